"""The BatchJob controller against the in-memory API and a real file:// output folder: one Job
per step, no duplicates, summaries and progress read from the store, suspend, cancel, merge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.batch_resume import Work, serialize_work
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import batch_job as controller
from support.fake_kube import DEFAULT_KINDS, FakeKube

NS = "ml"
NOW = "2026-01-01T12:00:00Z"
API = "mlkube.dev/v1alpha1"
PLAN = "sha256:" + "b" * 64
DIGEST = "sha256:" + "a" * 64
KINDS = DEFAULT_KINDS | {(API, "BatchJob"), (API, "BatchEndpoint")}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def config(tmp_path: Path) -> OperatorConfig:
    return OperatorConfig(
        allow_file_artifacts=True, batch_output_store=(tmp_path / "store").as_uri()
    )


def ready_model() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Model",
        "metadata": {"name": "m", "namespace": NS, "generation": 1},
        "spec": {
            "modelName": "m",
            "version": "1",
            "framework": "sklearn",
            "artifact": {"uri": "s3://models/m"},
        },
        "status": {
            "phase": "Ready",
            "observedGeneration": 1,
            "artifact": {"digest": DIGEST},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def cluster(out: Path, **job_spec: Any) -> FakeKube:
    kube = FakeKube(kinds=set(KINDS))
    kube.put(
        {
            "apiVersion": API,
            "kind": "BatchEndpoint",
            "metadata": {"name": "e", "namespace": NS},
            "spec": {
                "deployments": [
                    {"name": "d", "model": "m", "instanceCount": 1, "errorThreshold": 5}
                ]
            },
        }
    )
    kube.put(ready_model())
    spec = {
        "endpoint": "e",
        "input": {"uri": "s3://data/in/"},
        "output": {"uri": out.as_uri()},
        **job_spec,
    }
    kube.put(
        {
            "apiVersion": API,
            "kind": "BatchJob",
            "metadata": {"name": "j", "namespace": NS, "uid": "bj-uid"},
            "spec": spec,
        }
    )
    return kube


def run(kube: FakeKube, config: OperatorConfig) -> controller.Outcome:
    return controller.reconcile(kube, config, NS, "j", NOW)


def status(kube: FakeKube) -> dict[str, Any]:
    return kube.stored(API, "BatchJob", "j", NS).get("status") or {}


def jobs(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return controller.owned_jobs(kube, NS, "j", "bj-uid")


def finish(kube: FakeKube, step: str, outcome: str = "Complete") -> None:
    name = jobs(kube)[step]["metadata"]["name"]
    kube.mutate(
        ("batch/v1", "Job", NS, name),
        lambda j: j.update(
            status={
                "conditions": [{"type": outcome, "status": "True", "reason": "R", "message": "m"}]
            }
        ),
    )


def write(out: Path, relpath: str, body: dict[str, Any]) -> None:
    path = out / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))


def progress(
    index: int, succeeded: int, failed_items: int = 0, done: bool = False
) -> dict[str, Any]:
    return {
        "index": index,
        "indexes": 4,
        "planDigest": PLAN,
        "done": done,
        "miniBatches": {"total": 2, "succeeded": succeeded, "failed": 0, "retried": 0},
        "items": {
            "total": 10 * succeeded,
            "succeeded": 10 * succeeded - failed_items,
            "failed": failed_items,
        },
        "lastErrors": [],
    }


def planned(kube: FakeKube, config: OperatorConfig, out: Path) -> None:
    run(kube, config)
    finish(kube, "plan")
    write(
        out,
        "_mlkube/plan-summary.json",
        {"digest": PLAN, "miniBatches": 8, "items": 80, "itemsEstimated": False, "bytes": 1},
    )
    run(kube, config)


def test_one_plan_job_per_batch_job_and_started_once(out: Path, config: OperatorConfig) -> None:
    kube = cluster(out)
    first = run(kube, config)
    assert [e[1] for e in first.events] == ["Started"] and first.poll
    assert list(jobs(kube)) == ["plan"]
    plan = jobs(kube)["plan"]
    assert plan["metadata"]["ownerReferences"][0]["uid"] == "bj-uid"
    assert status(kube)["phase"] == "Planning"
    again = run(kube, config)  # e.g. a restarted operator
    assert again.events == [] and len(kube.written("create")) == 1


def test_lost_status_write_does_not_announce_twice(out: Path, config: OperatorConfig) -> None:
    kube = cluster(out)
    run(kube, config)
    kube.mutate((API, "BatchJob", NS, "j"), lambda o: o.pop("status"))  # the write was lost
    assert run(kube, config).events == []  # 409 on create: already started


def test_plan_summary_from_the_store_then_score_and_progress(
    out: Path, config: OperatorConfig
) -> None:
    kube = cluster(out)
    planned(kube, config, out)
    st = status(kube)
    assert st["plan"]["digest"] == PLAN and st["plan"]["indexes"] == 4
    assert st["phase"] == "Running" and set(jobs(kube)) == {"plan", "score"}
    score = jobs(kube)["score"]["spec"]
    assert (score["completions"], score["parallelism"], score["suspend"]) == (4, 1, False)
    write(out, "_mlkube/progress/index-00000.json", progress(0, 2))
    write(out, "_mlkube/progress/index-00001.json", progress(1, 1, failed_items=2))
    run(kube, config)
    st = status(kube)
    assert st["miniBatches"]["succeeded"] == 3 and st["items"]["failed"] == 2
    assert st["progress"] == 37
    writes = len(kube.written())
    run(kube, config)  # nothing changed: no status write
    assert len(kube.written()) == writes


def test_threshold_suspends_the_score_job_and_fails(out: Path, config: OperatorConfig) -> None:
    kube = cluster(out)
    planned(kube, config, out)
    write(out, "_mlkube/progress/index-00000.json", progress(0, 1, failed_items=6))
    outcome = run(kube, config)
    assert status(kube)["phase"] == "Failed" and not outcome.poll
    assert [e[1] for e in outcome.events] == ["ErrorThresholdExceeded"]
    assert jobs(kube)["score"]["spec"]["suspend"] is True


def test_suspend_and_cancel_reach_the_indexed_job(out: Path, config: OperatorConfig) -> None:
    kube = cluster(out)
    planned(kube, config, out)
    key = (API, "BatchJob", NS, "j")
    kube.mutate(key, lambda o: o["spec"].update(suspend=True))
    run(kube, config)
    assert jobs(kube)["score"]["spec"]["suspend"] is True
    assert status(kube)["phase"] == "Suspended"
    kube.mutate(key, lambda o: o["spec"].update(suspend=False))
    run(kube, config)
    assert jobs(kube)["score"]["spec"]["suspend"] is False
    kube.mutate(key, lambda o: o["spec"].update(cancel=True))
    outcome = run(kube, config)
    assert jobs(kube)["score"]["spec"]["suspend"] is True
    assert status(kube)["phase"] == "Cancelled" and [e[1] for e in outcome.events] == ["Cancelled"]


def test_merge_then_succeeded_with_manifest_counts(out: Path, config: OperatorConfig) -> None:
    kube = cluster(out)
    planned(kube, config, out)
    finish(kube, "score")
    run(kube, config)
    assert "merge" in jobs(kube) and status(kube)["phase"] == "Merging"
    finish(kube, "merge")
    run(kube, config)
    assert status(kube)["phase"] == "Merging"  # no manifest yet
    write(
        out,
        "_mlkube/manifest.json",
        {
            "planDigest": PLAN,
            "parts": [],
            "miniBatches": {"total": 8, "succeeded": 8, "failed": 0},
            "items": {"total": 79, "succeeded": 78, "failed": 1},
        },
    )
    outcome = run(kube, config)
    st = status(kube)
    assert st["phase"] == "Succeeded" and st["items"] == {"total": 79, "succeeded": 78, "failed": 1}
    assert [e[1] for e in outcome.events] == ["Succeeded"] and not outcome.poll


def test_missing_model_waits_and_default_output_store(out: Path, config: OperatorConfig) -> None:
    kube = cluster(out)
    kube.mutate((API, "BatchJob", NS, "j"), lambda o: o["spec"].pop("output"))
    kube.delete(API, "Model", "m", NS)
    run(kube, config)  # planning needs no model
    assert status(kube)["outputUri"] == f"{config.batch_output_store}/{NS}/j/"
    finish(kube, "plan")
    store = Path(str(config.batch_output_store).removeprefix("file://")) / NS / "j"
    write(store, "_mlkube/plan-summary.json", {"digest": PLAN, "miniBatches": 1, "items": 1})
    run(kube, config)
    st = status(kube)
    assert st["phase"] == "Pending" and st["message"] == "waiting: Model m does not exist"
    assert "score" not in jobs(kube)


def test_outputs_outside_the_namespace_stores_fail(out: Path) -> None:
    strict = OperatorConfig(artifact_stores=(("ml", ("s3://team-ml",)),))
    kube = cluster(out, output={"uri": "s3://other-team/x"})
    run(kube, strict)
    assert status(kube)["phase"] == "Failed" and "outside the stores" in status(kube)["message"]
    assert jobs(kube) == {}


def test_resume_reuses_the_source_output_and_reads_the_work_list(
    out: Path, config: OperatorConfig
) -> None:
    kube = cluster(out)
    planned(kube, config, out)
    kube.mutate((API, "BatchJob", NS, "j"), lambda o: o["spec"].update(cancel=True))
    run(kube, config)
    kube.put(
        {
            "apiVersion": API,
            "kind": "BatchJob",
            "metadata": {"name": "again", "namespace": NS, "uid": "again-uid"},
            "spec": {"endpoint": "e", "input": {"uri": "s3://data/in/"}, "resumeFrom": "j"},
        }
    )
    controller.reconcile(kube, config, NS, "again", NOW)
    plan = controller.owned_jobs(kube, NS, "again", "again-uid")["plan"]
    command = plan["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[4:9] == ["work", "--output", out.as_uri(), "--job", "again"]
    again = kube.stored(API, "BatchJob", "again", NS)["status"]
    assert again["phase"] == "Planning" and again["outputUri"] == out.as_uri()
    name = plan["metadata"]["name"]
    kube.mutate(
        ("batch/v1", "Job", NS, name),
        lambda j: j.update(status={"conditions": [{"type": "Complete", "status": "True"}]}),
    )
    (out / "_mlkube/work").mkdir(parents=True)
    (out / "_mlkube/work/again.json").write_bytes(serialize_work(Work(PLAN, (5, 6, 7), 5)))
    outcome = controller.reconcile(kube, config, NS, "again", NOW)
    assert "PartsInvalidated" not in [e[1] for e in outcome.events]
    score = controller.owned_jobs(kube, NS, "again", "again-uid")["score"]
    args = score["spec"]["template"]["spec"]["containers"][0]["command"]
    assert args[-2:] == ["--work", "_mlkube/work/again.json"]
    assert score["spec"]["completions"] == 3
    again = kube.stored(API, "BatchJob", "again", NS)["status"]
    assert again["miniBatches"]["total"] == 3 and again["plan"]["digest"] == PLAN


def test_resume_with_another_model_emits_parts_invalidated(
    out: Path, config: OperatorConfig
) -> None:
    """The work list read from the output says the source's parts were made by another model:
    the controller reports the PartsInvalidated Event when it creates the (full) score Job."""
    kube = cluster(out)
    planned(kube, config, out)
    kube.mutate((API, "BatchJob", NS, "j"), lambda o: o["spec"].update(cancel=True))
    run(kube, config)
    kube.put(
        {
            "apiVersion": API,
            "kind": "BatchJob",
            "metadata": {"name": "again", "namespace": NS, "uid": "again-uid"},
            "spec": {"endpoint": "e", "input": {"uri": "s3://data/in/"}, "resumeFrom": "j"},
        }
    )
    controller.reconcile(kube, config, NS, "again", NOW)
    plan = controller.owned_jobs(kube, NS, "again", "again-uid")["plan"]
    kube.mutate(
        ("batch/v1", "Job", NS, plan["metadata"]["name"]),
        lambda j: j.update(status={"conditions": [{"type": "Complete", "status": "True"}]}),
    )
    (out / "_mlkube/work").mkdir(parents=True)
    work = Work(PLAN, tuple(range(8)), 0, invalidated=6)
    (out / "_mlkube/work/again.json").write_bytes(serialize_work(work))
    outcome = controller.reconcile(kube, config, NS, "again", NOW)
    assert [e[:2] for e in outcome.events] == [("Warning", "PartsInvalidated")]
    assert "6 finished parts of j" in outcome.events[0][2]
    assert "score" in controller.owned_jobs(kube, NS, "again", "again-uid")
    again = controller.reconcile(kube, config, NS, "again", NOW)
    assert "PartsInvalidated" not in [e[1] for e in again.events]


def test_status_writes_leave_nothing_stale_through_a_resume(
    out: Path, config: OperatorConfig
) -> None:
    """The status is written by merge patch, which never removes a key the new status lacks;
    it does not need to: every pass writes the whole status (StatusDraft carries each field
    over), so after each pass the stored status IS the decided one. A job resumed after a
    source that failed with errors ends with its own message and no lastErrors of the source."""

    def reconcile(name: str) -> dict[str, Any]:
        outcome = controller.reconcile(kube, config, NS, name, NOW)
        assert outcome.decision is not None
        stored = kube.stored(API, "BatchJob", name, NS)["status"]
        assert stored == outcome.decision.status  # no leftover key from an earlier pass
        return stored

    kube = cluster(out)
    kube.delete(API, "Model", "m", NS)
    reconcile("j")
    finish(kube, "plan")
    write(out, "_mlkube/plan-summary.json", {"digest": PLAN, "miniBatches": 8, "items": 80})
    assert "waiting" in reconcile("j")["message"]  # no Model yet
    kube.put(ready_model())
    assert reconcile("j")["phase"] == "Running"  # the score Job is created
    bad = progress(0, 1, failed_items=1)
    bad["lastErrors"] = [{"miniBatch": 0, "attempt": 1, "message": "ValueError: bad row"}]
    write(out, "_mlkube/progress/index-00000.json", bad)
    running = reconcile("j")
    assert running["lastErrors"][0]["message"] == "ValueError: bad row"
    assert "waiting" not in running["message"]
    finish(kube, "score", "Failed")
    assert reconcile("j")["phase"] == "Failed"

    kube.put(
        {
            "apiVersion": API,
            "kind": "BatchJob",
            "metadata": {"name": "again", "namespace": NS, "uid": "again-uid"},
            "spec": {"endpoint": "e", "input": {"uri": "s3://data/in/"}, "resumeFrom": "j"},
        }
    )
    reconcile("again")
    plan = controller.owned_jobs(kube, NS, "again", "again-uid")["plan"]
    kube.mutate(
        ("batch/v1", "Job", NS, plan["metadata"]["name"]),
        lambda j: j.update(status={"conditions": [{"type": "Complete", "status": "True"}]}),
    )
    (out / "_mlkube/progress/index-00000.json").unlink()  # what `batch work` does
    write(out, "_mlkube/work/again.json", json.loads(serialize_work(Work(PLAN, (0, 1), 6))))
    reconcile("again")
    score = controller.owned_jobs(kube, NS, "again", "again-uid")["score"]
    kube.mutate(
        ("batch/v1", "Job", NS, score["metadata"]["name"]),
        lambda j: j.update(status={"conditions": [{"type": "Complete", "status": "True"}]}),
    )
    reconcile("again")
    merge = controller.owned_jobs(kube, NS, "again", "again-uid")["merge"]
    kube.mutate(
        ("batch/v1", "Job", NS, merge["metadata"]["name"]),
        lambda j: j.update(status={"conditions": [{"type": "Complete", "status": "True"}]}),
    )
    write(
        out,
        "_mlkube/manifest.json",
        {
            "planDigest": PLAN,
            "parts": [],
            "miniBatches": {"total": 8, "succeeded": 8, "failed": 0},
            "items": {"total": 80, "succeeded": 80, "failed": 0},
        },
    )
    done = reconcile("again")
    assert done["phase"] == "Succeeded"
    assert done["message"].startswith("80/80 items scored, 0 failed")
    assert not done.get("lastErrors")  # nothing of the source's errors
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["message"] == done["message"]
