"""Each kind's live objects judged by the real kstatus library (hack/kstatus: cli-utils'
status.Compute, what Flux, Helm 4 --wait and kpt compute) through their lifecycle: created and
not yet seen by the operator (InProgress, from the CRD's status default), working (InProgress),
ready (Current), failed for good (Failed, within seconds) and deleted (Terminating).

Objects are created before the operator starts, so "not yet seen" is a real state, not a race.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    endpoint_object,
    make_artifact,
    model_object,
)
from support.kstatus import compute
from support.notify_procs import Receiver
from support.operator import run_operator
from support.waiting import wait_for

HOLD = "tests.mlkube.dev/hold"  # a finalizer of the test's own: deletion shows as Terminating
WRONG_DIGEST = "sha256:" + "0" * 64


def live(kube: Kube, kind: str, name: str, namespace: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, kind, name, namespace)
    assert obj is not None, f"{kind} {name} is gone"
    return obj


def kstatus_of(kube: Kube, kind: str, name: str, namespace: str) -> dict[str, Any]:
    return compute(live(kube, kind, name, namespace))


def wait_kstatus(
    kube: Kube, kind: str, name: str, namespace: str, want: str, timeout: float = 30
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        obj = live(kube, kind, name, namespace)
        result = compute(obj)
        last.append((result, obj.get("status")))
        return result if result["status"] == want else None

    last: list[Any] = []

    try:
        result: dict[str, Any] = wait_for(
            reached, timeout=timeout, interval=0.2, what=f"kstatus {want} for {kind} {name}"
        )
    except AssertionError as err:
        raise AssertionError(f"{err}; last kstatus and status: {last[-1:]}") from None
    return result


def assert_conditions_observe(obj: dict[str, Any], *types: str) -> None:
    """The named conditions exist and each says which generation it describes."""
    conds = {c["type"]: c for c in obj["status"].get("conditions") or []}
    for type_ in types:
        assert type_ in conds, f"{obj['kind']} has no {type_} condition: {list(conds)}"
        assert conds[type_]["observedGeneration"] == obj["metadata"]["generation"], conds[type_]


def delete_held(kube: Kube, kind: str, name: str, namespace: str) -> None:
    """Delete, see Terminating while the test's finalizer holds it, then let it go."""
    kube.delete(API_VERSION, kind, name, namespace)
    assert kstatus_of(kube, kind, name, namespace)["status"] == "Terminating"
    kube.patch(API_VERSION, kind, name, {"metadata": {"finalizers": None}}, namespace)
    wait_for(lambda: kube.get(API_VERSION, kind, name, namespace) is None, timeout=20,
             what=f"{kind} {name} deleted")  # fmt: skip


def held(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["finalizers"] = [HOLD]
    return obj


def test_model_created_ready_failed_changed_deleted(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    uri = make_artifact(tmp_path / "good", "weights")
    kube.create(held(model_object("good", namespace, uri, "1")))
    bad = model_object("bad", namespace, make_artifact(tmp_path / "bad", "other"), "1")
    bad["spec"]["artifact"]["digest"] = WRONG_DIGEST
    kube.create(held(bad))

    # Not yet seen: the CRD defaults status.observedGeneration to 0, so kstatus waits.
    for name in ("good", "bad"):
        obj = live(kube, "Model", name, namespace)
        assert obj["status"] == {"observedGeneration": 0}
        result = compute(obj)
        assert result["status"] == "InProgress", result
        assert "observed generation is 0" in result["message"]

    with run_operator(namespace):
        started = time.monotonic()
        failed = wait_kstatus(kube, "Model", "bad", namespace, "Failed", timeout=20)
        took = time.monotonic() - started
        wait_kstatus(kube, "Model", "good", namespace, "Current", timeout=20)
    print(f"\nfailed Model computed as Failed {took:.1f}s after the operator started")
    assert took < 15, took
    assert failed["conditions"][0]["reason"] == "DigestMismatch"
    assert "digest" in failed["message"]
    bad_obj = live(kube, "Model", "bad", namespace)
    assert_conditions_observe(bad_obj, "Ready", "Reconciling", "Stalled")
    good = live(kube, "Model", "good", namespace)
    assert_conditions_observe(good, "Ready", "Reconciling", "Stalled")
    assert good["status"]["observedGeneration"] == good["metadata"]["generation"]

    # A spec change the operator has not seen yet: InProgress again, then Current.
    kube.patch(API_VERSION, "Model", "good", {"spec": {"description": "v2"}}, namespace)
    result = kstatus_of(kube, "Model", "good", namespace)
    assert result["status"] == "InProgress", result
    with run_operator(namespace):
        wait_kstatus(kube, "Model", "good", namespace, "Current", timeout=20)
        assert_conditions_observe(live(kube, "Model", "good", namespace), "Ready", "Stalled")

    delete_held(kube, "Model", "good", namespace)
    delete_held(kube, "Model", "bad", namespace)


def test_online_endpoint_created_working_ready_failed_deleted(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kube.create(held(endpoint_object("credit", namespace, blue_green_spec())))
    assert kstatus_of(kube, "OnlineEndpoint", "credit", namespace)["status"] == "InProgress"

    with run_operator(namespace):
        # Its Models do not exist yet: Progressing (waiting), which kstatus reads as Reconciling.
        def waiting() -> dict[str, Any] | None:
            obj = live(kube, "OnlineEndpoint", "credit", namespace)
            conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
            return obj if conds.get("Reconciling", {}).get("status") == "True" else None

        obj = wait_for(waiting, timeout=20, what="endpoint Reconciling")
        result = compute(obj)
        assert result["status"] == "InProgress", result
        assert result["conditions"][0]["reason"] == "ModelNotFound", result
        assert_conditions_observe(obj, "Ready", "Progressing", "Reconciling")

        create_ready_models(kube, namespace, tmp_path)
        wait_kstatus(kube, "OnlineEndpoint", "credit", namespace, "Current", timeout=40)
        ready = live(kube, "OnlineEndpoint", "credit", namespace)
        assert_conditions_observe(ready, "Ready", "Progressing", "Degraded", "Reconciling")

        # A deployment moved to a Model that failed for good: a human must act -> Failed.
        bad = model_object("broken", namespace, make_artifact(tmp_path / "b", "x"), "9")
        bad["spec"]["artifact"]["digest"] = WRONG_DIGEST
        kube.create(bad)
        wait_kstatus(kube, "Model", "broken", namespace, "Failed", timeout=20)
        spec = blue_green_spec()
        spec["deployments"][1]["model"] = "broken"
        kube.patch(API_VERSION, "OnlineEndpoint", "credit", {"spec": spec}, namespace)
        failed = wait_kstatus(kube, "OnlineEndpoint", "credit", namespace, "Failed", timeout=20)
        assert "broken" in failed["message"]
        assert_conditions_observe(
            live(kube, "OnlineEndpoint", "credit", namespace), "Ready", "Stalled", "Reconciling"
        )
    delete_held(kube, "OnlineEndpoint", "credit", namespace)


def batch_endpoint(namespace: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchEndpoint",
        "metadata": {"name": "scores", "namespace": namespace},
        "spec": {"deployments": [{"name": "main", "model": model}]},
    }


def batch_job(namespace: str, out: Path) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchJob",
        "metadata": {"name": "nightly", "namespace": namespace},
        "spec": {
            "endpoint": "scores",
            "input": {"uri": "s3://data/in/"},
            "output": {"uri": out.as_uri()},
        },
    }


def test_batch_endpoint_and_job_created_working_ready_failed_deleted(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    model = model_object("m", namespace, make_artifact(tmp_path / "m", "m"), "1")
    model["spec"]["artifact"]["digest"] = WRONG_DIGEST
    # What the plan step would write (kwok runs no process): the job then needs its Model.
    summary = tmp_path / "out" / "_mlkube" / "plan-summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"digest": "sha256:" + "c" * 64, "miniBatches": 2,
                                   "items": 20, "itemsEstimated": False, "bytes": 10}))  # fmt: skip
    kube.create(held(batch_endpoint(namespace, "m")))
    kube.create(held(batch_job(namespace, tmp_path / "out")))
    for kind, name in (("BatchEndpoint", "scores"), ("BatchJob", "nightly")):
        assert kstatus_of(kube, kind, name, namespace)["status"] == "InProgress", kind

    with run_operator(namespace):
        # The Model does not exist yet: the endpoint needs a human (Failed), the job waits.
        wait_kstatus(kube, "BatchEndpoint", "scores", namespace, "Failed", timeout=20)
        working = wait_kstatus(kube, "BatchJob", "nightly", namespace, "InProgress")
        wait_for(
            lambda: (
                live(kube, "BatchJob", "nightly", namespace)["status"].get("phase") == "Pending"
            ),
            timeout=30,
            what="BatchJob Pending for its Model",
        )
        job = live(kube, "BatchJob", "nightly", namespace)
        assert job["status"]["observedGeneration"] == job["metadata"]["generation"], working
        assert_conditions_observe(job, "Ready", "Reconciling")
        # The Model fails verification for good: both are Failed within seconds.
        kube.create(model)
        started = time.monotonic()
        wait_kstatus(kube, "BatchJob", "nightly", namespace, "Failed", timeout=20)
        wait_kstatus(kube, "BatchEndpoint", "scores", namespace, "Failed", timeout=20)
        print(f"\nBatchJob Failed {time.monotonic() - started:.1f}s after its Model was created")
        assert_conditions_observe(live(kube, "BatchJob", "nightly", namespace), "Stalled")
        # A good Model under the endpoint: Ready, Current.
        good = model_object("g", namespace, make_artifact(tmp_path / "g", "g"), "1")
        kube.create(good)
        spec = {"deployments": [{"name": "main", "model": "g"}]}
        kube.patch(API_VERSION, "BatchEndpoint", "scores", {"spec": spec}, namespace)
        wait_kstatus(kube, "BatchEndpoint", "scores", namespace, "Current", timeout=20)
        assert_conditions_observe(
            live(kube, "BatchEndpoint", "scores", namespace), "Ready", "Reconciling", "Stalled"
        )
        # The human fixed it: the job moves on (InProgress), kwok runs its steps, the merge
        # manifest (what the merge step writes) gives the counts: Succeeded, Current.
        manifest = {"planDigest": "sha256:" + "c" * 64, "parts": [],
                    "miniBatches": {"total": 2, "succeeded": 2, "failed": 0},
                    "items": {"total": 20, "succeeded": 20, "failed": 0}}  # fmt: skip
        (tmp_path / "out" / "_mlkube" / "manifest.json").write_text(json.dumps(manifest))
        wait_kstatus(kube, "BatchJob", "nightly", namespace, "Current", timeout=60)
        done = live(kube, "BatchJob", "nightly", namespace)
        assert done["status"]["phase"] == "Succeeded"
        assert_conditions_observe(done, "Ready", "Reconciling", "Stalled")
    delete_held(kube, "BatchJob", "nightly", namespace)
    delete_held(kube, "BatchEndpoint", "scores", namespace)


def test_event_sink_created_ready_gone_changed_deleted(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """An EventSink (docs/notifications.md): not seen (InProgress), resolved (Current), answered
    410 (Failed: SinkGone), its spec changed (InProgress, then Current again), deleted."""
    receiver = Receiver(tmp_path).start()
    try:
        spec = {"uri": receiver.url, "types": ["dev.mlkube.model.*"]}
        kube.create(held({"apiVersion": API_VERSION, "kind": "EventSink",
                          "metadata": {"name": "ops", "namespace": namespace},
                          "spec": spec}))  # fmt: skip
        assert kstatus_of(kube, "EventSink", "ops", namespace)["status"] == "InProgress"
        with run_operator(namespace):
            wait_kstatus(kube, "EventSink", "ops", namespace, "Current")
            assert_conditions_observe(
                live(kube, "EventSink", "ops", namespace), "Ready", "Reconciling", "Stalled"
            )
            receiver.control(mode="gone")
            kube.create(model_object("m", namespace, make_artifact(tmp_path / "m", "m"), "1"))
            wait_kstatus(kube, "EventSink", "ops", namespace, "Failed")
            gone = live(kube, "EventSink", "ops", namespace)["status"]
            assert gone["lastFailure"]["status"] == 410
            receiver.control(mode="ok")
            changed = {"types": ["dev.mlkube.model.registered.v1"]}
            kube.patch(API_VERSION, "EventSink", "ops", {"spec": changed}, namespace)
            wait_kstatus(kube, "EventSink", "ops", namespace, "Current")
            assert_conditions_observe(live(kube, "EventSink", "ops", namespace), "Ready")
        delete_held(kube, "EventSink", "ops", namespace)
    finally:
        receiver.stop()
