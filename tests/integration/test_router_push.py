"""A traffic change reaches a real router by the operator's signed push, not by the file.

The real operator runs against the real control plane; the router is a real process started by
the test with exactly what a kubelet would give the router pod: the ConfigMap's file and the
push key Secret's file. A pod carrying the router's labels and kwok's hands-off annotation is
marked Ready at the router's own loopback address (a random 127.x.y.z, so it can listen on the
router port the operator dials), the way the drift test plays kubelet and network. The test
never rewrites the router's file afterwards: a kubelet that has not synced yet (it takes up to a
minute). So a new split the router serves can only have arrived by push; the time from the
spec patch (and from the ConfigMap write) to the router serving it is measured.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from mlkube.builders.endpoint_router import config_text_hash
from mlkube.builders.names import COMPONENT_ROUTER, pod_selector, push_secret_name, router_name
from mlkube.contract import API_VERSION, ROUTER_HTTP_PORT
from mlkube.controllers import router_push
from mlkube.k8s import ApiError, Kube
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    wait_endpoint_ready,
)
from support.waiting import wait_for

EP = "credit"
KWOK_HANDS_OFF = {"kwok.x-k8s.io/status": "custom"}


def loopback_address() -> str:
    """A 127.x.y.z nobody listens on at the router port (the whole /8 is this machine)."""
    for _ in range(50):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
        with socket.socket() as probe:
            try:
                probe.bind((host, ROUTER_HTTP_PORT))
            except OSError:
                continue
            return host
    raise AssertionError("no free loopback address for the router port")


@contextlib.contextmanager
def router_process(host: str, config_file: Path, key_file: Path, log: Path) -> Iterator[str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlkube_serving", "router", "--config", str(config_file),
             "--push-key-file", str(key_file), "--host", host, "--port", str(ROUTER_HTTP_PORT),
             "--metrics-port", "0"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://{host}:{ROUTER_HTTP_PORT}"
    try:
        wait_for(lambda: router_state(url, proc) is not None, timeout=20, interval=0.05,
                 what="router answers /-/config")  # fmt: skip
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def router_state(url: str, proc: subprocess.Popen[bytes] | None = None) -> dict[str, Any] | None:
    assert proc is None or proc.poll() is None, "router exited"
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(url + "/-/config", timeout=1) as response,
    ):
        state: dict[str, Any] = json.load(response)
        return state
    return None


def ready_pod_at(kube: Kube, namespace: str, host: str) -> None:
    """A router pod (labels of the endpoint's routers) that runs here, Ready at `host`."""
    pod = kube.create({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "router-local", "namespace": namespace,
                     "labels": pod_selector(EP, COMPONENT_ROUTER), "annotations": KWOK_HANDS_OFF},
        "spec": {"containers": [{"name": "router", "image": "mlkube-serving:dev"}]},
    })  # fmt: skip
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "phase": "Running", "podIP": host, "podIPs": [{"ip": host}], "hostIP": host,
        "startTime": now,
        "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                       for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
        "containerStatuses": [{"name": "router", "image": "mlkube-serving:dev", "ready": True,
                               "restartCount": 0, "started": True,
                               "state": {"running": {"startedAt": now}}}],
    }  # fmt: skip
    kube.patch("v1", "Pod", pod["metadata"]["name"], {"status": status}, namespace,
               subresource="status")  # fmt: skip


def release_pod(kube: Kube, namespace: str) -> None:
    """kwok does not finish deleting a pod it was told to leave alone."""
    with contextlib.suppress(ApiError):
        kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/router-local",
                     body={"gracePeriodSeconds": 0})  # fmt: skip


def test_a_traffic_change_reaches_a_real_router_by_push_long_before_a_file_refresh(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    kube.create(endpoint_object(EP, namespace, blue_green_spec()))
    wait_endpoint_ready(kube, namespace, EP)
    configmap = kube.get("v1", "ConfigMap", router_name(EP), namespace)
    secret = kube.get("v1", "Secret", push_secret_name(EP), namespace)
    assert configmap is not None and secret is not None
    first_text = configmap["data"]["config.json"]
    first_revision = json.loads(first_text)["revision"]
    assert first_revision > 1_700_000_000  # a new ConfigMap starts at the Unix time

    # What the kubelet would mount into the router pod, once.
    (tmp_path / "router").mkdir()
    config_file, key_file = tmp_path / "router" / "config.json", tmp_path / "push-key"
    config_file.write_text(first_text)
    key_file.write_bytes(base64.b64decode(secret["data"]["key"]))
    key_file.chmod(0o400)
    host = loopback_address()
    log = tmp_path / "router.log"
    with router_process(host, config_file, key_file, log) as url:
        try:
            ready_pod_at(kube, namespace, host)
            state = router_state(url)
            assert state is not None and state["revision"] == first_revision
            assert state["hash"] == config_text_hash(first_text)

            before = router_push.PUSH_RESULTS["ok"]
            first = change_split(kube, namespace, url, {"blue": 20, "green": 80}, first_text)
            new_text = configmap_text(kube, namespace)
            new_state = router_state(url)
            samples = [first]
            for weight in (50, 10, 90, 30, 60):  # more changes, for a distribution
                previous = configmap_text(kube, namespace)
                split = {"blue": 100 - weight, "green": weight}
                samples.append(change_split(kube, namespace, url, split, previous))
        finally:
            release_pod(kube, namespace)

    new_doc = json.loads(new_text)
    assert new_doc["traffic"] == {"blue": 20, "green": 80}
    assert new_doc["revision"] == first_revision + 1
    assert new_state is not None and new_state["revision"] == first_revision + 1
    assert new_state["hash"] == config_text_hash(new_text)  # the very bytes of the ConfigMap
    assert config_file.read_text() == first_text  # no file refresh happened: it was the push
    assert "router config applied from push" in log.read_text()
    assert router_push.PUSH_RESULTS["ok"] >= before + 6
    specs = sorted(s[0] for s in samples)
    writes = sorted(s[1] for s in samples)
    report = (
        f"push latency over {len(samples)} traffic changes: spec patch -> router serving "
        f"median {specs[len(specs) // 2] * 1000:.0f} ms (max {specs[-1] * 1000:.0f} ms); "
        f"ConfigMap write seen -> router serving median {writes[len(writes) // 2] * 1000:.0f} "
        f"ms (max {writes[-1] * 1000:.0f} ms)"
    )
    print("\n" + report, file=sys.__stderr__)  # KopfRunner captures sys.stdout
    (tmp_path / "push-latency.txt").write_text(report + "\n")
    assert specs[0] < 10.0  # a kubelet refresh takes up to ~60 s; this is well below


def configmap_text(kube: Kube, namespace: str) -> str:
    live = kube.get("v1", "ConfigMap", router_name(EP), namespace)
    assert live is not None
    return str(live["data"]["config.json"])


def change_split(
    kube: Kube, namespace: str, url: str, split: dict[str, int], previous: str
) -> tuple[float, float]:
    """Patch the split; (spec patch -> router serving, ConfigMap change seen -> serving)."""
    old_hash = config_text_hash(previous)
    marks: dict[str, float] = {}
    stop = threading.Event()

    def watch_configmap() -> None:
        while not stop.is_set() and "configmap" not in marks:
            if configmap_text(kube, namespace) != previous:
                marks["configmap"] = time.monotonic()
            time.sleep(0.005)

    watcher = threading.Thread(target=watch_configmap, daemon=True)
    watcher.start()
    start = time.monotonic()
    kube.patch(API_VERSION, "OnlineEndpoint", EP, {"spec": {"traffic": split}}, namespace)

    def serving_new() -> dict[str, Any] | None:
        state = router_state(url)
        return state if state and state["hash"] != old_hash else None

    state = wait_for(serving_new, timeout=20, interval=0.002, what="the router serves the split")
    served_at = time.monotonic()
    stop.set()
    watcher.join(timeout=5)
    assert json.loads(configmap_text(kube, namespace))["traffic"] == split
    assert state["hash"] == config_text_hash(configmap_text(kube, namespace))
    return served_at - start, served_at - marks.get("configmap", start)
