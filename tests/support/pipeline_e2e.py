"""Helpers of the pipeline e2e tests (tests/e2e/test_pipeline*.py): the sample Pipeline's
uploaded inputs, the train → evaluate → register steps both tests run, step and run waits, the
step pods of a run, and the endpoint's deployment readiness."""

from __future__ import annotations

import time
from typing import Any

from mlkube.contract import API_VERSION, KIND_PIPELINE, KIND_PIPELINE_RUN
from mlkube.k8s import Kube
from support.waiting import wait_for

TERMINAL = ("Succeeded", "Failed", "Cancelled")
RUN_LABEL = "mlkube.dev/pipeline-run"


def sample_train_step(kube: Kube) -> dict[str, Any]:
    """The credit-retrain sample's train step as install_samples localized it (inputs in the
    node's store, the imported serving image)."""
    sample = kube.get(API_VERSION, KIND_PIPELINE, "credit-retrain", "default")
    assert sample is not None, "install_samples created no credit-retrain Pipeline"
    step: dict[str, Any] = next(s for s in sample["spec"]["steps"] if s["name"] == "train")
    return step


def train_evaluate_register(train: dict[str, Any], model_name: str) -> list[dict[str, Any]]:
    """The sample's train step (as localized), a gate on its held-out AUC, and registerModel
    of its model as `model_name` with the train metrics in the lineage."""
    metrics = {"step": "train", "output": "metrics"}
    return [
        {k: train[k] for k in ("name", "image", "command", "args", "inputs", "outputs")},
        {"name": "evaluate", "type": "evaluate",
         "evaluate": {"metrics": [{"name": "auc", "from": metrics, "min": 0.8}]}},
        {"name": "register", "type": "registerModel", "dependsOn": ["evaluate"],
         "registerModel": {"artifact": {"step": "train", "output": "model"},
                           "modelName": model_name, "framework": "sklearn",
                           "metricsFrom": [metrics]}},
    ]  # fmt: skip


def ready(obj: dict[str, Any] | None) -> bool:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def wait_run(kube: Kube, namespace: str, name: str, timeout: float = 300) -> dict[str, Any]:
    """The finished run; every change of a step's phase or message is printed on the way, with
    the seconds since the wait began (where a slow step spends its time)."""
    began, seen = time.monotonic(), dict[str, tuple[Any, Any]]()

    def finished() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, KIND_PIPELINE_RUN, name, namespace) or {}
        for step in (obj.get("status") or {}).get("steps") or []:
            now = (step.get("phase"), step.get("message"))
            if seen.get(step["name"]) != now:
                seen[step["name"]] = now
                print(
                    f"  +{time.monotonic() - began:5.1f}s {step['name']}: {now[0]} {now[1] or ''}"
                )
        return obj if (obj.get("status") or {}).get("phase") in TERMINAL else None

    run: dict[str, Any] = wait_for(finished, timeout=timeout, interval=0.25, what=f"run {name}")
    return run


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in run["status"].get("steps") or []}


def describe(run: dict[str, Any]) -> str:
    """Phase and message of every step: the assertion message when a run did not succeed."""
    return (
        "; ".join(f"{n}: {s.get('phase')} {s.get('message', '')}" for n, s in steps_of(run).items())
        + f" | run: {run['status'].get('message', '')}"
    )


def step_jobs(kube: Kube, namespace: str, run: str | None = None) -> list[dict[str, Any]]:
    selector = f"{RUN_LABEL}={run}" if run else RUN_LABEL
    return list(kube.list("batch/v1", "Job", namespace, label_selector=selector))


def step_pods(kube: Kube, namespace: str, run: str) -> list[dict[str, Any]]:
    return list(kube.list("v1", "Pod", namespace, label_selector=f"{RUN_LABEL}={run}"))


def main_container(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    found: dict[str, Any] = next(s for s in statuses if s["name"] == "main")
    return found


def deployment_ready(kube: Kube, namespace: str, endpoint: str, deployment: str) -> bool:
    obj = kube.get(API_VERSION, "OnlineEndpoint", endpoint, namespace) or {}
    status = obj.get("status") or {}
    dep = next((d for d in status.get("deployments") or [] if d["name"] == deployment), {})
    applied = (status.get("traffic") or {}).get(deployment)
    return bool(dep.get("readyReplicas")) and applied is not None


def print_timings(title: str, run: dict[str, Any], wall: float) -> None:
    status = run["status"]
    print(f"\n{title}: {status['phase']} in {wall:.1f}s wall "
          f"({status.get('startTime')} -> {status.get('completionTime')})")  # fmt: skip
    for name, st in steps_of(run).items():
        cache = st.get("cache") or {}
        print(f"  {name}: {st.get('phase')} {st.get('startTime')} -> {st.get('completionTime')}"
              f" cache hit={cache.get('hit')} ({cache.get('reason')})")  # fmt: skip


def elapsed(since: float) -> float:
    return time.monotonic() - since
