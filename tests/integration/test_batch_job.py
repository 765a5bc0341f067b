"""BatchJob against the real control plane: the operator's plan, Indexed score and merge Jobs
(shape as the builders say, owned, garbage-collected), status through the phases, suspend and
cancel reaching the Indexed Job, and no duplicate Jobs after an operator restart.

kwok completes the Jobs' pods without running them, so the test plays the scorer's part in the
output folder (the plan summary and the merge manifest the real steps would write there): the
operator must then find them in the store, as it does when a pod and its termination message
are gone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from mlkube.api.batch import BatchEndpointSpec
from mlkube.api.batch_job import BatchJobSpec
from mlkube.builders.batch_job import BatchJobRef, build_plan_job
from mlkube.builders.batch_settings import resolve_settings
from mlkube.builders.model_facts import ModelFacts, read_model
from mlkube.builders.operator_config import parse_operator_config
from mlkube.contract import API_VERSION
from mlkube.handlers.config import operator_config
from mlkube.k8s import Kube
from support.endpoints import create_ready_models
from support.operator import patched_env, run_operator
from support.waiting import wait_for

PLAN = "sha256:" + "c" * 64
MODEL = "credit-risk-v3"


def write(folder: Path, relpath: str, body: dict[str, Any]) -> None:
    path = folder / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))


def create(kube: Kube, namespace: str, out: Path, name: str = "nightly", **spec: Any) -> None:
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "BatchEndpoint",
            "metadata": {"name": "credit", "namespace": namespace},
            "spec": {"deployments": [{"name": "d", "model": MODEL}]},
        }
    )
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": "BatchJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "endpoint": "credit",
                "input": {"uri": "s3://data/in/"},
                "output": {"uri": out.as_uri()},
                **spec,
            },
        }
    )


def jobs(kube: Kube, namespace: str, name: str = "nightly") -> dict[str, dict[str, Any]]:
    items = kube.list("batch/v1", "Job", namespace, label_selector=f"mlkube.dev/batch-job={name}")
    return {j["spec"]["template"]["metadata"]["labels"]["mlkube.dev/batch-step"]: j for j in items}


def batch_job(kube: Kube, namespace: str, name: str = "nightly") -> dict[str, Any]:
    return kube.get(API_VERSION, "BatchJob", name, namespace) or {}


def phase_is(kube: Kube, namespace: str, phase: str, timeout: float = 40) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        obj = batch_job(kube, namespace)
        return obj if (obj.get("status") or {}).get("phase") == phase else None

    return wait_for(reached, timeout=timeout, interval=0.1, what=f"BatchJob {phase}")


def test_plan_job_shape_then_pending_for_the_model_then_suspend_merge_and_success(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    out = tmp_path / "out"
    # What the plan step writes next to the output (kwok runs no process).
    write(
        out,
        "_mlkube/plan-summary.json",
        {"digest": PLAN, "miniBatches": 8, "items": 80, "itemsEstimated": False, "bytes": 10},
    )
    create(kube, namespace, out, suspend=True)
    plan = wait_for(lambda: jobs(kube, namespace).get("plan"), timeout=20, what="plan Job")
    obj = batch_job(kube, namespace)
    meta = obj["metadata"]
    # Exactly what the builder makes (the API server only adds defaults).
    settings = resolve_settings(
        BatchEndpointSpec.model_validate({"deployments": [{"name": "d", "model": MODEL}]}),
        BatchJobSpec.model_validate(obj["spec"]),
    )
    stub = ModelFacts(name=MODEL, model_name=MODEL, version="", framework="", uri="", digest="")
    expected = build_plan_job(
        BatchJobRef(meta["name"], namespace, meta["uid"]),
        input_uri="s3://data/in/",
        input_format="auto",
        output=out.as_uri(),
        settings=settings,
        model=stub,
        config=parse_operator_config(os.environ),
    )
    assert plan["metadata"]["name"] == expected["metadata"]["name"]
    assert plan["metadata"]["name"].startswith("nightly-plan-")
    assert plan["metadata"]["ownerReferences"] == expected["metadata"]["ownerReferences"]
    assert plan["metadata"]["labels"] == expected["metadata"]["labels"]
    pod, want = plan["spec"]["template"]["spec"], expected["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == want["containers"][0]["command"]
    assert pod["containers"][0]["securityContext"] == want["containers"][0]["securityContext"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert plan["spec"]["podFailurePolicy"] == expected["spec"]["podFailurePolicy"]

    # kwok completes the plan pod; the summary is read from the store; no Model yet.
    waiting = phase_is(kube, namespace, "Pending")
    assert waiting["status"]["message"] == f"waiting: Model {MODEL} does not exist"
    assert waiting["status"]["plan"]["digest"] == PLAN and "score" not in jobs(kube, namespace)

    create_ready_models(kube, namespace, tmp_path)  # the progress loop notices within seconds
    phase_is(kube, namespace, "Suspended")
    score = jobs(kube, namespace)["score"]
    facts = read_model(MODEL, kube.get(API_VERSION, "Model", MODEL, namespace))
    assert isinstance(facts, ModelFacts)
    spec = score["spec"]
    assert spec["completionMode"] == "Indexed" and spec["suspend"] is True
    assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (4, 1, 3)
    init = spec["template"]["spec"]["initContainers"][0]
    assert init["args"][-2:] == ["--digest", facts.digest]
    assert "--plan-digest" in spec["template"]["spec"]["containers"][0]["command"]
    assert kube.list("v1", "Pod", namespace, label_selector="mlkube.dev/batch-step=score") == []

    # Unsuspend: kwok completes the 4 indexes, the merge runs; its manifest gives the counts.
    write(
        out,
        "_mlkube/manifest.json",
        {
            "planDigest": PLAN,
            "parts": [],
            "miniBatches": {"total": 8, "succeeded": 8, "failed": 0},
            "items": {"total": 80, "succeeded": 79, "failed": 1},
        },
    )
    kube.patch(API_VERSION, "BatchJob", "nightly", {"spec": {"suspend": False}}, namespace)
    done = phase_is(kube, namespace, "Succeeded", timeout=60)
    assert done["status"]["items"] == {"total": 80, "succeeded": 79, "failed": 1}
    assert done["status"]["progress"] == 100
    assert set(jobs(kube, namespace)) == {"plan", "score", "merge"}
    ready = [c for c in done["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"


def play_kubelet(kube: Kube, namespace: str, pod: dict[str, Any], summary: str) -> None:
    """What a kubelet reports for a finished `scorer` container with a termination message."""
    terminated = {
        "exitCode": 0,
        "reason": "Completed",
        "message": summary,
        "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:00:01Z",
    }
    status = {
        "phase": "Succeeded",
        "containerStatuses": [
            {
                "name": "scorer",
                "image": pod["spec"]["containers"][0]["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
    kube.patch(
        "v1", "Pod", pod["metadata"]["name"], {"status": status}, namespace, subresource="status"
    )


@pytest.fixture
def pods_left_alone() -> Iterator[None]:
    """Batch pods kwok does not complete (the dev executor's annotation without the executor)."""
    operator_config.cache_clear()
    with patched_env({"MLKUBE_BATCH_POD_ANNOTATIONS": "kwok.x-k8s.io/status=custom"}):
        yield
    operator_config.cache_clear()


def test_summary_from_the_termination_message_and_cancel_suspends_the_indexed_job(
    kube: Kube, namespace: str, tmp_path: Path, pods_left_alone: None
) -> None:
    with run_operator(namespace):
        create_ready_models(kube, namespace, tmp_path)
        create(kube, namespace, tmp_path / "out")  # nothing in the store: the pod tells
        pod = wait_for(
            lambda: next(
                iter(
                    kube.list("v1", "Pod", namespace, label_selector="mlkube.dev/batch-step=plan")
                ),
                None,
            ),
            timeout=20,
            what="plan pod",
        )
        assert pod["metadata"]["annotations"]["kwok.x-k8s.io/status"] == "custom"
        play_kubelet(
            kube,
            namespace,
            pod,
            json.dumps({"digest": PLAN, "miniBatches": 2, "items": 20, "bytes": 5}),
        )
        running = phase_is(kube, namespace, "Running")
        assert running["status"]["plan"]["digest"] == PLAN
        assert running["status"]["plan"]["indexes"] == 2
        assert jobs(kube, namespace)["score"]["spec"]["suspend"] is False
        kube.patch(API_VERSION, "BatchJob", "nightly", {"spec": {"cancel": True}}, namespace)
        cancelled = phase_is(kube, namespace, "Cancelled")
        assert jobs(kube, namespace)["score"]["spec"]["suspend"] is True
        assert "merge" not in jobs(kube, namespace)
        stalled = [c for c in cancelled["status"]["conditions"] if c["type"] == "Stalled"]
        assert stalled[0]["status"] == "True"


def test_restart_makes_no_duplicates_and_jobs_go_with_the_batch_job(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with run_operator(namespace):
        create(kube, namespace, out)  # no plan summary anywhere: it stays Planning
        first = wait_for(lambda: jobs(kube, namespace).get("plan"), timeout=20, what="plan Job")
        phase_is(kube, namespace, "Planning")
    with run_operator(namespace):
        wait_for(
            lambda: "summary" in (batch_job(kube, namespace)["status"].get("message") or ""),
            timeout=20,
            what="plan complete, summary awaited",
        )
        assert not batch_job(kube, namespace)["metadata"].get("finalizers")  # deletable alone
        found = kube.list("batch/v1", "Job", namespace)
        assert [j["metadata"]["uid"] for j in found] == [first["metadata"]["uid"]]
    kube.delete(API_VERSION, "BatchJob", "nightly", namespace)
    wait_for(
        lambda: kube.list("batch/v1", "Job", namespace) == [],
        timeout=60,
        what="Jobs garbage-collected with their BatchJob",
    )
