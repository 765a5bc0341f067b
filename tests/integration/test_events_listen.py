"""`mlkube events listen` as a user runs it (a subprocess) against the real API server: the
EventSink it registers passes the real CRD's validation, what is POSTed to its receiver is
printed, it exits on --count and removes its sink. With the real operator (its own process, as
`make dev` runs it), the event of a Model registered during the test reaches listeners in both
formats through the operator's outbox and delivery, and `events sinks` shows their status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.cli.events_sink import LABEL_LISTENER
from mlkube.cli.main import main
from mlkube.cli.model_view import short_digest
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.events import catalogue as c
from mlkube.events.encode import encode
from mlkube.k8s import Kube
from support.event_objects import all_occurrences
from support.notify_procs import OperatorProcess
from support.operator import stop_process
from support.waiting import wait_for

pytestmark = pytest.mark.integration
REGISTERED = c.MODEL_REGISTERED.type


@pytest.fixture
def listen(cluster: Cluster, namespace: str) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def run(*args: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "mlkube", "events", "listen", "-n", namespace,
                "--kubeconfig", str(cluster.kubeconfig), *args]  # fmt: skip
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield run
    for process in started:
        stop_process(process, grace=10)


def listener_sink(kube: Kube, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: kube.list(API_VERSION, "EventSink", namespace, f"{LABEL_LISTENER}=true"),
        timeout=30,
        what="the listener's EventSink",
    )[0]
    return found


def post(uri: str, headers: dict[str, str], body: bytes) -> int:
    import urllib.request

    request = urllib.request.Request(uri, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_listen_registers_a_valid_sink_prints_events_and_cleans_up(
    kube: Kube, namespace: str, listen: Any
) -> None:
    process = listen("--count", "1", "--timeout", "60", "--mode", "structured", "--types",
                     "dev.mlkube.model.*", "--types", "dev.mlkube.rollout.*")  # fmt: skip
    sink = listener_sink(kube, namespace)
    spec = sink["spec"]
    # The real API server accepted it (CRD schema and CEL rules) with the defaults applied.
    assert sink["metadata"]["name"].startswith("mlkube-listen-")
    assert spec["uri"].startswith("http://127.0.0.1:") and spec["uri"].endswith("/")
    assert spec["types"] == ["dev.mlkube.model.*", "dev.mlkube.rollout.*"]
    assert (spec["mode"], spec["format"], spec["delivery"]["retry"]) == (
        "structured",
        "cloudevents",
        3,
    )
    # What the operator's delivery would send (the same encoder), POSTed to the sink's URI.
    registered = next(o for o in all_occurrences() if o.type == REGISTERED)
    message = encode(registered, mode="structured")
    assert message is not None
    assert post(spec["uri"], message.headers, message.body) == 204
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    [line] = out.splitlines()
    assert f"model.registered.v1  {registered.subject}  id={registered.id[:12]}" in line
    assert "name=credit-risk  version=4" in line
    assert "listening on http://127.0.0.1:" in err
    # Gone on exit.
    assert kube.get(API_VERSION, "EventSink", sink["metadata"]["name"], namespace) is None


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "--timeout"])
def test_listen_removes_its_sink_however_it_stops(
    kube: Kube, namespace: str, listen: Any, how: str
) -> None:
    process = listen(*(["--timeout", "2"] if how == "--timeout" else []))
    name = listener_sink(kube, namespace)["metadata"]["name"]
    if how != "--timeout":
        process.send_signal(getattr(signal, how))  # Ctrl-C is SIGINT
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out) == (0, ""), err
    assert ("timeout: 0 event(s) received" if how == "--timeout" else "stopped: 0 event(s)") in err
    assert kube.get(API_VERSION, "EventSink", name, namespace) is None


def test_listen_says_when_the_api_server_is_unreachable(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: down\n"
        "clusters: [{name: down, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: down, context: {cluster: down, user: u, namespace: x}}]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mlkube", "events", "listen", "--kubeconfig", str(kubeconfig),
         "--count", "1", "--timeout", "5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    # One line saying what is wrong, no traceback, and nothing on stdout.
    assert result.stderr.startswith("error: cannot reach the API server at http://127.0.0.1:1: ")
    assert "Connection refused" in result.stderr and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def _ready_status(kube: Kube, namespace: str, name: str) -> bool:
    obj = kube.get(API_VERSION, "EventSink", name, namespace) or {}
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_the_operator_delivers_a_registered_model_to_listeners(
    kube: Kube,
    cluster: Cluster,
    namespace: str,
    tmp_path: Path,
    listen: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's "a local CloudEvents receiver shows model.registered", with the operator as
    `make dev` runs it (its own process, dev mode, an outbox file), in both formats."""
    operator = OperatorProcess(namespace, tmp_path, tmp_path / "outbox.db")
    try:
        cloudevents = listen("--count", "1", "--timeout", "120", "--types", REGISTERED)
        azure = listen("--count", "1", "--timeout", "120", "--format", "azureml", "--json",
                       "--types", REGISTERED)  # fmt: skip
        sinks = wait_for(lambda: _two(kube, namespace), 30, what="both listeners' EventSinks")
        operator.start()
        names = [s["metadata"]["name"] for s in sinks]
        for name in names:
            wait_for(lambda n=name: _ready_status(kube, namespace, n), 60, what=f"{name} Ready")
        # `events sinks` shows them as the operator reports them.
        argv = ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
        assert main(["events", "sinks", *argv]) == 0
        table = capsys.readouterr().out.splitlines()
        assert sorted(row.split()[:2] for row in table[1:]) == sorted([n, "True"] for n in names)
        assert main(["events", "sinks", "show", names[0], *argv]) == 0
        assert "Ready:           True" in capsys.readouterr().out

        artifact = tmp_path / "model.onnx"
        artifact.write_bytes(b"weights 7")
        kube.create({"apiVersion": API_VERSION, "kind": "Model",
                     "metadata": {"name": "credit-risk-v7", "namespace": namespace},
                     "spec": {"modelName": "credit-risk", "version": "7", "framework": "onnx",
                              "artifact": {"uri": artifact.as_uri()}}})  # fmt: skip
        out, err = cloudevents.communicate(timeout=120)
        assert cloudevents.returncode == 0, err + operator.output()[-3000:]
        [line] = out.splitlines()
        model = kube.get(API_VERSION, "Model", "credit-risk-v7", namespace)
        assert model is not None
        ready = next(c for c in model["status"]["conditions"] if c["type"] == "Ready")
        assert line.startswith(f"{ready['lastTransitionTime']}  model.registered.v1  "
                               f"Model/{namespace}/credit-risk-v7  id=")  # fmt: skip
        assert "name=credit-risk  version=7  framework=onnx" in line
        assert f"digest={short_digest(model['status']['artifact']['digest'])}" in line

        out, err = azure.communicate(timeout=120)
        assert azure.returncode == 0, err
        [event] = [json.loads(text) for text in out.splitlines()]
        assert event["eventType"] == "Microsoft.MachineLearningServices.ModelRegistered"
        assert event["subject"] == "models/credit-risk:7"
        assert (event["data"]["modelName"], event["data"]["modelVersion"]) == ("credit-risk", "7")
        # Both removed their sinks on the way out.
        assert kube.list(API_VERSION, "EventSink", namespace) == []
    finally:
        operator.stop()


def _two(kube: Kube, namespace: str) -> list[dict[str, Any]] | None:
    found = kube.list(API_VERSION, "EventSink", namespace, f"{LABEL_LISTENER}=true")
    return found if len(found) == 2 else None
