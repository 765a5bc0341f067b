"""An absent operator never blocks a deletion (issue 9 B5): no finalizer from mlkube or Kopf on
Models, OnlineEndpoints, BatchEndpoints or their scheduled BatchJobs, so a namespace holding
them goes away with the operator stopped; what the old on-delete handler did is repaired
level-based when the operator is back, and the finalizer older versions added is removed from
the objects still carrying it."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from mlkube.reconcile.batch_schedule import minutes_since_epoch
from support.endpoints import (
    blue_green_spec,
    create_ready_models,
    deployed_by,
    endpoint_object,
    make_artifact,
    model_object,
    wait_endpoint_ready,
)
from support.operator import run_operator
from support.waiting import wait_for

EP = "credit"
BATCH = "scoring"
LEGACY_FINALIZER = "mlkube.dev/finalizer"  # settings.persistence.finalizer, as Kopf added it


def finalizers(kube: Kube, kind: str, name: str, namespace: str) -> list[str]:
    obj = kube.get(API_VERSION, kind, name, namespace) or {}
    return list(obj.get("metadata", {}).get("finalizers") or [])


def verifying_model(name: str, namespace: str) -> dict[str, Any]:
    """A pvc:// Model whose claim does not exist: its verification Job never finishes, so it
    stays Verifying (what Kopf's verification timer put a finalizer on)."""
    return {
        "apiVersion": API_VERSION, "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"modelName": "credit", "version": "9", "framework": "onnx",
                 "artifact": {"uri": "pvc://no-such-claim/credit/9"}},
    }  # fmt: skip


def drift_spec() -> dict[str, Any]:
    """An endpoint with drift enabled (what Kopf's drift daemon put a finalizer on)."""
    spec = blue_green_spec()
    spec["deployments"][0]["drift"] = {"enabled": True}
    return spec


def phase(kube: Kube, namespace: str, model: str) -> str | None:
    obj = kube.get(API_VERSION, "Model", model, namespace) or {}
    return (obj.get("status") or {}).get("phase")


def handled(kube: Kube, namespace: str, name: str) -> bool:
    """The operator wrote this endpoint's status for its generation (so it has seen it)."""
    obj = kube.get(API_VERSION, "OnlineEndpoint", name, namespace) or {}
    status = obj.get("status") or {}
    return bool(status) and status.get("observedGeneration") == obj["metadata"]["generation"]


def batch_endpoint(namespace: str, model: str) -> tuple[dict[str, Any], str]:
    """A BatchEndpoint whose hourly schedule fires at once (its latest time was 2 min ago), and
    the name of the BatchJob it creates."""
    t = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=2)
    schedule = {
        "name": "hourly",
        "cron": f"{t.minute} * * * *",
        "input": {"uri": "file:///data/{scheduledTime}"},
    }
    obj = {
        "apiVersion": API_VERSION,
        "kind": "BatchEndpoint",
        "metadata": {"name": BATCH, "namespace": namespace},
        "spec": {"deployments": [{"name": "main", "model": model}], "schedules": [schedule]},
    }
    return obj, f"{BATCH}-hourly-{minutes_since_epoch(t)}"  # fmt: skip


def populate(kube: Kube, namespace: str, tmp_path: Path) -> None:
    """With the operator running: Ready Models in use, one Verifying, two endpoints (one
    monitoring drift), a BatchEndpoint with a scheduled BatchJob, each handled by the operator
    at least once."""
    create_ready_models(kube, namespace, tmp_path)
    kube.create(verifying_model("credit-v9", namespace))
    kube.create(endpoint_object(EP, namespace, blue_green_spec()))
    kube.create(endpoint_object("drifting", namespace, drift_spec()))
    batch, job = batch_endpoint(namespace, "credit-risk-v3")
    kube.create(batch)
    wait_for(lambda: kube.get(API_VERSION, "BatchJob", job, namespace), what="scheduled job")
    wait_endpoint_ready(kube, namespace, EP)
    wait_for(lambda: handled(kube, namespace, "drifting"), what="drift endpoint handled")
    wait_for(lambda: phase(kube, namespace, "credit-v9") == "Verifying", what="Verifying")
    time.sleep(3)  # a verification poll and a drift round have run


OBJECTS = [("OnlineEndpoint", EP), ("OnlineEndpoint", "drifting"), ("Model", "credit-risk-v3"),
           ("Model", "credit-risk-v4"), ("Model", "credit-v9"),
           ("BatchEndpoint", BATCH)]  # fmt: skip


def test_the_operator_puts_no_finalizer_on_models_or_endpoints(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    with run_operator(namespace):
        populate(kube, namespace, tmp_path)
        for kind, name in OBJECTS:
            assert finalizers(kube, kind, name, namespace) == [], f"{kind} {name}"
        (job,) = kube.list(API_VERSION, "BatchJob", namespace)
        assert job["metadata"].get("finalizers") is None
        assert deployed_by(kube, namespace, "credit-risk-v3") != []


def test_a_namespace_holding_endpoints_and_models_goes_with_the_operator_stopped(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    with run_operator(namespace):
        populate(kube, namespace, tmp_path)

    started = time.monotonic()
    kube.delete("v1", "Namespace", namespace)
    wait_for(lambda: kube.get("v1", "Namespace", namespace) is None, timeout=60, interval=0.5,
             what="the namespace to be deleted without the operator")  # fmt: skip
    print(f"namespace deleted in {time.monotonic() - started:.1f}s without the operator")


def test_an_endpoint_deleted_while_the_operator_is_down_is_released_when_it_is_back(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    ref = {"kind": "OnlineEndpoint", "name": EP, "namespace": namespace}
    batch_ref = {"kind": "BatchEndpoint", "name": BATCH, "namespace": namespace}
    with run_operator(namespace):
        create_ready_models(kube, namespace, tmp_path)
        kube.create(endpoint_object(EP, namespace, blue_green_spec()))
        kube.create(batch_endpoint(namespace, "credit-risk-v4")[0])
        wait_endpoint_ready(kube, namespace, EP)
        assert deployed_by(kube, namespace, "credit-risk-v3") == [ref]
        wait_for(lambda: batch_ref in deployed_by(kube, namespace, "credit-risk-v4"),
                 what="the BatchEndpoint in deployedBy")  # fmt: skip

    kube.delete(API_VERSION, "OnlineEndpoint", EP, namespace)
    kube.delete(API_VERSION, "BatchEndpoint", BATCH, namespace)
    wait_for(lambda: kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) is None,
             timeout=10, what="endpoint gone without the operator")  # fmt: skip
    selector = f"mlkube.dev/endpoint={EP}"
    wait_for(lambda: not kube.list("apps/v1", "Deployment", namespace, label_selector=selector),
             timeout=60, interval=0.5, what="children garbage-collected")  # fmt: skip
    assert deployed_by(kube, namespace, "credit-risk-v3") == [ref]  # stale, nobody to fix it
    assert batch_ref in deployed_by(kube, namespace, "credit-risk-v4")

    with run_operator(namespace):
        started = time.monotonic()
        wait_for(
            lambda: all(deployed_by(kube, namespace, m) == []
                        for m in ("credit-risk-v3", "credit-risk-v4")),
            timeout=20, interval=0.1, what="deployedBy repaired",
        )  # fmt: skip
        took = time.monotonic() - started
    print(f"deployedBy repaired {took:.1f}s after the operator started")  # KopfRunner eats stdout


def test_the_finalizer_of_older_versions_is_removed_when_the_operator_starts(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """Objects left by an operator that still added finalizers: live ones lose it, and one
    already being deleted (stuck in Terminating meanwhile) finishes going away."""
    legacy = {"finalizers": [LEGACY_FINALIZER]}
    model = model_object("credit-risk-v3", namespace, make_artifact(tmp_path, "w"), "3")
    model["metadata"].update(legacy)
    kube.create(model)
    for name in (EP, "stuck"):
        obj = endpoint_object(name, namespace, blue_green_spec())
        obj["metadata"].update(legacy)
        kube.create(obj)
    kube.delete(API_VERSION, "OnlineEndpoint", "stuck", namespace)
    time.sleep(1)
    assert finalizers(kube, "OnlineEndpoint", "stuck", namespace) == [LEGACY_FINALIZER]

    with run_operator(namespace):
        wait_for(
            lambda: (finalizers(kube, "Model", "credit-risk-v3", namespace) == []
                     and finalizers(kube, "OnlineEndpoint", EP, namespace) == []
                     and kube.get(API_VERSION, "OnlineEndpoint", "stuck", namespace) is None),
            timeout=20, interval=0.1, what="legacy finalizers removed",
        )  # fmt: skip
        wait_for(lambda: phase(kube, namespace, "credit-risk-v3") == "Ready", what="Model Ready")
        assert finalizers(kube, "Model", "credit-risk-v3", namespace) == []
        assert finalizers(kube, "OnlineEndpoint", EP, namespace) == []
