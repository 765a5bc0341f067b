"""The storage initializer against the real S3 store on the node's bridge: a Model is uploaded
and registered (the operator verifies its digest), then its object bytes are overwritten in
MinIO behind the Model's back. The endpoint's pod downloads the tampered bytes from inside the
pod network, refuses them (digest mismatch) and never becomes Ready; the reason is visible."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.names import deployment_name
from mlkube.contract import API_VERSION, ENV_S3_ENDPOINT_URL, KIND_MODEL
from mlkube.devcluster import Cluster
from mlkube.devcluster.realnode import RealNode
from mlkube.devcluster.realnode_store import BUCKET
from mlkube.k8s import Kube
from mlkube.storage import publish
from mlkube_serving.storage_initializer import EXIT_MISMATCH
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "examples" / "models" / "credit-risk" / "3"
NS, MODEL, EP = "default", "tampered-v1", "tampered"


def _s3(node: RealNode) -> Any:
    import s3fs

    env = node.store_env()
    return s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": env[ENV_S3_ENDPOINT_URL]},
    )


def _model_phase(kube: Kube) -> str | None:
    obj = kube.get(API_VERSION, KIND_MODEL, MODEL, NS) or {}
    phase: str | None = (obj.get("status") or {}).get("phase")
    return phase


def _pod(kube: Kube) -> dict[str, Any] | None:
    deploy = kube.get("apps/v1", "Deployment", deployment_name(EP, "blue"), NS)
    if deploy is None:
        return None
    labels = deploy["spec"]["selector"]["matchLabels"]
    pods = kube.list("v1", "Pod", NS, ",".join(f"{k}={v}" for k, v in labels.items()))
    return pods[0] if pods else None


def _init_failure(kube: Kube) -> str | None:
    """The storage initializer's termination message once it exited non-zero."""
    pod = _pod(kube) or {}
    for st in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if st["name"] != "storage-initializer":
            continue
        term = (st.get("state") or {}).get("terminated") or (st.get("lastState") or {}).get(
            "terminated"
        )
        if term and term.get("exitCode"):
            return f"exit {term['exitCode']}: {term.get('message') or term.get('reason')}"
    return None


@pytest.fixture(scope="module")
def tampered(
    credit_endpoint: str, node_cluster: tuple[Cluster, RealNode], kube: Kube
) -> Iterator[str]:
    """Upload + register (operator verifies), overwrite the bytes in MinIO, then deploy."""
    node = node_cluster[1]
    saved = dict(os.environ)
    os.environ.update(node.store_env())
    try:
        uri, facts = publish(
            str(ARTIFACT), f"s3://{BUCKET}", namespace=NS, name="tampered", version="1"
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    kube.create({
        "apiVersion": API_VERSION, "kind": KIND_MODEL,
        "metadata": {"name": MODEL, "namespace": NS},
        "spec": {"modelName": "tampered", "version": "1", "framework": "onnx",
                 "artifact": {"uri": uri}},
    })  # fmt: skip
    wait_for(lambda: _model_phase(kube) == "Ready", timeout=60, interval=0.5, what="Model Ready")
    model = kube.get(API_VERSION, KIND_MODEL, MODEL, NS) or {}
    print(f"\nregistered {uri} as {facts.digest}: {model['status'].get('artifact')}")
    fs = _s3(node)
    [key] = [k for k in fs.find(uri.removeprefix("s3://")) if k.endswith("model.onnx")]
    original = fs.cat(key)
    flipped = bytes([original[0] ^ 0xFF]) + original[1:]  # same size, one byte differs
    fs.pipe(key, flipped)
    assert fs.cat(key) != original
    kube.create({
        "apiVersion": API_VERSION, "kind": "OnlineEndpoint",
        "metadata": {"name": EP, "namespace": NS},
        "spec": {"deployments": [{"name": "blue", "model": MODEL, "replicas": 1}],
                 "traffic": {"blue": 100}},
    })  # fmt: skip
    yield EP
    kube.delete(API_VERSION, "OnlineEndpoint", EP, NS)
    kube.delete(API_VERSION, KIND_MODEL, MODEL, NS)


def test_tampered_artifact_is_refused_and_the_pod_never_ready(
    tampered: str, node_cluster: tuple[Cluster, RealNode], kube: Kube
) -> None:
    failure = wait_for(lambda: _init_failure(kube), timeout=120, interval=1,
                       what="storage initializer failing")  # fmt: skip
    assert failure.startswith(f"exit {EXIT_MISMATCH}:"), failure  # DigestMismatch's exit code

    def read_log() -> str | None:
        # The current attempt may be waiting in back-off: then the previous one has the log.
        name = (_pod(kube) or {})["metadata"]["name"]
        for previous in ("false", "true"):
            code, body = node_cluster[0].request(
                "GET",
                f"/api/v1/namespaces/{NS}/pods/{name}/log"
                f"?container=storage-initializer&tailLines=20&previous={previous}",
            )
            text = str(body.get("raw", body))
            if code == 200 and "digest" in text.lower():
                return text
        return None

    log = wait_for(
        read_log, timeout=60, interval=1, what="the initializer's digest error in its log"
    )
    print(f"\nstorage-initializer {failure}; log: {log.strip()}")
    # It keeps refusing: the pod stays unready over retries (CrashLoopBackOff of the init).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pod = _pod(kube) or {}
        conds = (pod.get("status") or {}).get("conditions") or []
        assert not any(c["type"] == "Ready" and c["status"] == "True" for c in conds), pod
        time.sleep(1)
    ep = kube.get(API_VERSION, "OnlineEndpoint", EP, NS) or {}
    ready = next(c for c in ep["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False", ready


def test_tampered_reason_is_visible_in_endpoint_show(
    tampered: str, node_cluster: tuple[Cluster, RealNode], kube: Kube
) -> None:
    def degraded() -> dict[str, Any] | None:
        ep = kube.get(API_VERSION, "OnlineEndpoint", EP, NS) or {}
        conds = {c["type"]: c for c in (ep.get("status") or {}).get("conditions") or []}
        bad = conds.get("Degraded", {})
        return ep if bad.get("status") == "True" and bad.get("reason") == "PodsFailing" else None

    # The pod watch reports it within seconds of the second failure, not at the 10 min deadline.
    ep = wait_for(degraded, timeout=120, interval=1, what="endpoint Degraded (PodsFailing)")
    (blue,) = ep["status"]["deployments"]
    assert "storage-initializer" in blue["message"] and "digest mismatch" in blue["message"]
    out = subprocess.run(
        [str(Path(sys.executable).parent / "mlkube"), "endpoint", "show", EP,
         "--kubeconfig", str(node_cluster[0].kubeconfig), "-n", NS],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    print(f"\n$ mlkube endpoint show {EP}\n{out.stdout}{out.stderr}")
    assert out.returncode == 0, out.stderr
    assert "Ready:      False (PodsFailing)" in out.stdout
    assert f"exited {EXIT_MISMATCH}: error: digest mismatch" in out.stdout
