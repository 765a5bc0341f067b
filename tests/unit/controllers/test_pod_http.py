"""Pod polling keeps to the operator's pod networks whoever calls it, and by default an
operator outside the cluster contacts loopback only (a kwok pod IP exists nowhere)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mlkube.builders.operator_config import (
    LOOPBACK_NETWORKS,
    OperatorConfig,
    OperatorConfigError,
    contactable_pods,
    parse_operator_config,
)
from mlkube.controllers import drift_poll, pod_http, router_poll

KWOK_POD = "10.244.0.5"


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a connection is attempted to; anything but loopback is refused here, so
    even a regression sends nothing off the machine."""
    attempts: list[Any] = []
    real = socket.create_connection

    def guarded(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address[0])
        if not str(address[0]).startswith("127."):
            raise ConnectionRefusedError("test: only loopback")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    return attempts


@pytest.fixture
def server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"loaded": true, "hash": "sha256:abc"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_without_a_config_only_loopback_is_contacted(connections: list[Any], server: int) -> None:
    hashes = router_poll.router_config_hashes([KWOK_POD, "127.0.0.1"], server, 1.0)
    assert hashes == [None, "sha256:abc"]
    assert router_poll.fetch_config_hash(KWOK_POD, server, 1.0) is None
    summaries, errors = drift_poll.fetch_summaries([KWOK_POD], server, 1.0)
    assert summaries == [] and "MLKUBE_POD_NETWORKS" in errors[0]
    assert connections == ["127.0.0.1"]


def test_the_config_given_is_applied_by_the_poller_itself(connections: list[Any]) -> None:
    dev = OperatorConfig(pod_networks=("127.0.0.0/8",))
    replies = pod_http.get_from_pods(
        [KWOK_POD], 9, "/", config=dev, timeout=0.5, max_bytes=10, what="x"
    )
    assert replies[0].error is not None and not replies[0].ok
    in_cluster = OperatorConfig(pod_networks=None)
    replies = pod_http.get_from_pods(
        [KWOK_POD], 9, "/", config=in_cluster, timeout=0.5, max_bytes=10, what="x"
    )
    assert connections == [KWOK_POD]  # allowed in a pod (refused by the fixture, not sent)
    assert "only loopback" in (replies[0].error or "")


def test_an_oversized_answer_is_an_error_not_a_crash(connections: list[Any], server: int) -> None:
    replies = pod_http.get_from_pods(
        ["127.0.0.1"], server, "/", config=None, timeout=1.0, max_bytes=8, what="the state"
    )
    assert replies[0].error is not None and "the state" in replies[0].error


def test_pod_networks_default_depends_on_running_in_a_pod() -> None:
    assert parse_operator_config({}).pod_networks == LOOPBACK_NETWORKS
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    assert parse_operator_config(in_pod).pod_networks is None
    assert parse_operator_config({"MLKUBE_POD_NETWORKS": "*"}).pod_networks is None
    explicit = {**in_pod, "MLKUBE_POD_NETWORKS": "10.88.0.0/16"}
    assert parse_operator_config(explicit).pod_networks == ("10.88.0.0/16",)
    assert parse_operator_config({"MLKUBE_POD_NETWORKS": "none"}).pod_networks == ()
    config = parse_operator_config({"MLKUBE_POD_NETWORKS": "127.0.0.0/8, 10.88.0.0/16"})
    assert contactable_pods(["127.0.0.1", "10.88.3.4", "10.244.0.5", "x"], config) == [
        "127.0.0.1",
        "10.88.3.4",
    ]
    loopback = parse_operator_config({})
    assert contactable_pods(["::1", "127.0.0.9", KWOK_POD], loopback) == ["::1", "127.0.0.9"]
    with pytest.raises(OperatorConfigError, match="MLKUBE_POD_NETWORKS"):
        parse_operator_config({"MLKUBE_POD_NETWORKS": "10.0.0.0/33"})


def test_ready_pod_ips_filters_and_sorts() -> None:
    def pod(ip: str, ready: bool = True, container: str = "drift", **meta: Any) -> Any:
        return {
            "metadata": meta,
            "spec": {"containers": [{"name": container}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": str(ready)}]},
        }  # fmt: skip

    pods = [
        pod("10.0.0.2"), pod("10.0.0.1"), pod("10.0.0.1"), pod("10.0.0.3", ready=False),
        pod("10.0.0.4", deletionTimestamp="now"), pod("10.0.0.5", container="server"),
    ]  # fmt: skip
    assert pod_http.ready_pod_ips(pods) == ["10.0.0.1", "10.0.0.2", "10.0.0.5"]
    assert pod_http.ready_pod_ips(pods, "drift") == ["10.0.0.1", "10.0.0.2"]
