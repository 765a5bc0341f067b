"""`mlkube endpoint rollout` against the real API server: the request annotation each verb
writes (docs/rollouts.md §5), the refusals, and the view rendered from a status.rollout written
through the API as the operator writes it (no operator runs here: the status is ours)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from mlkube.api.rollout_status import parse_rollout_request
from mlkube.cli.main import main
from mlkube.contract import ANNOTATION_ROLLOUT_REQUEST, API_VERSION, KIND_ONLINE_ENDPOINT
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from support.rollouts import aborted_status, endpoint, rollout_status

pytestmark = pytest.mark.integration
EP = "credit"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _write_status(kube: Kube, namespace: str, **status: Any) -> None:
    kube.patch(API_VERSION, KIND_ONLINE_ENDPOINT, EP, {"status": status}, namespace, "status")


def _get(kube: Kube, namespace: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, KIND_ONLINE_ENDPOINT, EP, namespace)
    assert obj is not None
    return obj


def test_rollout_verbs_write_requests_and_status_renders(
    cluster: Cluster, kube: Kube, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    kube.create(endpoint(EP, namespace))
    code, _, err = _run(capsys, "endpoint", "rollout", "promote", EP, *ns)
    assert code == 1 and "no rollout has started yet" in err

    _write_status(kube, namespace, traffic={"blue": 90, "green": 10}, rollout=rollout_status())
    code, out, _ = _run(capsys, "endpoint", "rollout", "status", EP, *ns)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"Endpoint:   {namespace}/{EP}"
    assert "Step:       2/6 analysis errors, p99" in lines
    assert "Traffic:    spec wants green=100, running blue=90 green=10" in lines
    assert "    12:00:30  Successful   0.002  n=790" in lines
    assert all(len(line) <= 80 for line in lines)

    code, out, _ = _run(capsys, "endpoint", "rollout", "promote", EP, "--full", *ns)
    assert code == 0 and "rollout promote-full requested" in out
    obj = _get(kube, namespace)
    request = parse_rollout_request(obj["metadata"]["annotations"][ANNOTATION_ROLLOUT_REQUEST])
    assert (request.action, request.revision) == ("promote-full", rollout_status()["revision"])
    assert uuid.UUID(request.id).version == 4
    assert obj["metadata"]["generation"] == 1  # metadata only: spec and generation untouched
    code, out, _ = _run(capsys, "endpoint", "show", EP, *ns)
    assert "Request:    promote-full (not handled yet)" in out
    assert "Rollout:    Progressing (StepAnalysis)" in out

    # The operator aborts, recording the request it handled; promote has nothing left to do.
    _write_status(kube, namespace, traffic={"blue": 100},
                  rollout=aborted_status(lastRequest=request.id))  # fmt: skip
    code, _, err = _run(capsys, "endpoint", "rollout", "promote", EP, *ns)
    assert code == 1 and "nothing to promote: the rollout is Aborted" in err
    code, out, _ = _run(capsys, "endpoint", "rollout", "status", EP, *ns)
    assert "Aborted:    metric errors measured 0.12, condition result <= 0.01" in out
    assert "Traffic:    spec wants green=100, running blue=100" in out
    assert "Request:" not in out

    # retry --wait returns once the operator (here: this thread) records the request's id.
    def operator_handles() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = _get(kube, namespace)["metadata"]["annotations"][ANNOTATION_ROLLOUT_REQUEST]
            retry = parse_rollout_request(text)
            if retry.id != request.id:
                restarted = rollout_status(reason="StepWeight", stepIndex=0, lastRequest=retry.id)
                _write_status(kube, namespace, rollout=restarted)
                return
            time.sleep(0.2)

    handler = threading.Thread(target=operator_handles)
    handler.start()
    code, out, _ = _run(capsys, "endpoint", "rollout", "retry", EP, "--wait", "--timeout", "30",
                        *ns)  # fmt: skip
    handler.join()
    assert code == 0
    assert out.splitlines()[-1] == (
        f"onlineendpoint.mlkube.dev/{EP}: handled: the rollout is Progressing (StepWeight)"
    )
    retry = parse_rollout_request(
        _get(kube, namespace)["metadata"]["annotations"][ANNOTATION_ROLLOUT_REQUEST]
    )
    assert retry.action == "retry" and retry.id != request.id


def test_watch_follows_until_the_rollout_ends(
    cluster: Cluster, kube: Kube, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    kube.create(endpoint(EP, namespace))
    _write_status(kube, namespace, traffic={"blue": 90, "green": 10}, rollout=rollout_status())

    def operator_promotes() -> None:
        # Gaps far above --interval: the watch reads each state at least once.
        time.sleep(1.0)
        _write_status(kube, namespace, rollout=rollout_status(weight=50, stepIndex=4))
        time.sleep(2.5)
        promoted = rollout_status(phase="Promoted", reason="Promoted", stepIndex=6, weight=100,
                                  metrics=[], finishedAt="2026-11-30T12:05:00Z")  # fmt: skip
        _write_status(kube, namespace, traffic={"green": 100}, rollout=promoted)

    writer = threading.Thread(target=operator_promotes)
    writer.start()
    start = time.monotonic()
    code, out, _ = _run(capsys, "endpoint", "rollout", "status", EP, "--watch",
                        "--interval", "0.2", "--timeout", "30", *ns)  # fmt: skip
    writer.join()
    assert code == 0 and time.monotonic() - start < 20
    views = out.split("\n--- ")
    assert len(views) == 3, out  # the first view, then one per change
    assert "Step:       5/6 setWeight 50" in views[1]
    assert "Rollout:    Promoted (Promoted)" in views[2]
    assert "Step:       6/6 done" in views[2]


def test_an_endpoint_without_rollout_says_so(
    cluster: Cluster, kube: Kube, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    obj = endpoint(EP, namespace)
    del obj["spec"]["rollout"]
    kube.create(obj)
    for verb in ("status", "abort"):
        code, _, err = _run(capsys, "endpoint", "rollout", verb, EP, *ns)
        assert code == 1 and "declares no rollout (spec.rollout)" in err
    code, _, err = _run(capsys, "endpoint", "rollout", "status", "ghost", *ns)
    assert code == 1 and f"OnlineEndpoint {namespace}/ghost not found" in err
