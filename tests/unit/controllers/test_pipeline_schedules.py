"""Pipeline schedules on the shared runner, over the in-memory API: Replace cancels the active
run of the schedule (spec.cancel) and starts the new slot's, Allow runs them side by side,
history limits delete the oldest finished runs of the schedule only (never a manual run), and
a bad time zone is a Stalled pipeline, not a crash."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers import pipeline as controller
from mlkube.controllers.pipeline_cache_gc import CacheCollector
from mlkube.controllers.pipeline_triggers import Polls
from mlkube.reconcile.batch_schedule import minutes_since_epoch
from support.fake_kube import FakeKube

API = "mlkube.dev/v1alpha1"
NS = "ml"
T0 = dt.datetime(2026, 5, 1, 10, 0, 5, tzinfo=dt.UTC)
STEP = {"name": "train", "image": "trainer@sha256:" + "e" * 64, "command": ["python", "t.py"]}
CONFIG = OperatorConfig(allow_file_artifacts=True, artifact_store="file:///nonexistent/ptrig")


def pipeline(fake: FakeKube, **schedule: Any) -> str:
    spec = {"steps": [STEP], "schedules": [{"name": "s", "cron": "0 * * * *", **schedule}]}
    obj = fake.put(
        {"apiVersion": API, "kind": "Pipeline", "metadata": {"name": "p", "namespace": NS},
         "spec": spec}
    )  # fmt: skip
    return str(obj["metadata"]["uid"])


def run(fake: FakeKube, uid: str, hours: int = 0) -> controller.Outcome:
    now = T0 + dt.timedelta(hours=hours)
    return controller.reconcile(
        fake, CONFIG, NS, "p", uid, now, polls=Polls(), collector=CacheCollector()
    )


def slot(hours: int) -> str:
    return f"p-s-{minutes_since_epoch(T0.replace(second=0) + dt.timedelta(hours=hours))}"


def runs(fake: FakeKube) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in fake.list(API, "PipelineRun", NS)}


def finish(fake: FakeKube, name: str, phase: str) -> None:
    fake.mutate((API, "PipelineRun", NS, name), lambda o: o.update(status={"phase": phase}))


def test_replace_cancels_the_active_run_and_starts_the_new_slot(fake: FakeKube) -> None:
    uid = pipeline(fake, concurrencyPolicy="Replace")
    run(fake, uid)
    outcome = run(fake, uid, hours=1)
    assert sorted(runs(fake)) == sorted([slot(0), slot(1)])
    assert runs(fake)[slot(0)]["spec"]["cancel"] is True
    assert not runs(fake)[slot(1)]["spec"].get("cancel")
    assert {"PipelineRunCancelled", "PipelineRunCreated"} <= {r for _, r, _ in outcome.events}


def test_allow_runs_slots_side_by_side(fake: FakeKube) -> None:
    uid = pipeline(fake, concurrencyPolicy="Allow")
    for hours in range(3):
        run(fake, uid, hours=hours)
    assert sorted(runs(fake)) == sorted(slot(h) for h in range(3))
    assert all(not r["spec"].get("cancel") for r in runs(fake).values())
    status = fake.stored(API, "Pipeline", "p", NS)["status"]
    assert status["runs"]["active"] == 3


def test_history_limits_delete_only_the_schedules_oldest_finished_runs(fake: FakeKube) -> None:
    uid = pipeline(fake, concurrencyPolicy="Allow", successfulRunsHistoryLimit=1,
                   failedRunsHistoryLimit=0)  # fmt: skip
    fake.put({"apiVersion": API, "kind": "PipelineRun",
              "metadata": {"name": "manual", "namespace": NS},
              "spec": {"pipeline": "p"}, "status": {"phase": "Succeeded"}})  # fmt: skip
    for hours in range(3):
        run(fake, uid, hours=hours)
    finish(fake, slot(0), "Succeeded")
    finish(fake, slot(1), "Succeeded")
    finish(fake, slot(2), "Failed")
    outcome = run(fake, uid, hours=2)
    assert sorted(runs(fake)) == sorted(["manual", slot(1)])
    deleted = [m for _, r, m in outcome.events if r == "PipelineRunDeleted"]
    assert len(deleted) == 2 and all("history limit" in m for m in deleted)


def test_a_bad_time_zone_stalls_the_pipeline(fake: FakeKube) -> None:
    uid = pipeline(fake, timeZone="Mars/Olympus")
    run(fake, uid)
    status = fake.stored(API, "Pipeline", "p", NS)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert "unknown time zone 'Mars/Olympus'" in ready["message"]
    assert "unknown time zone" in status["schedules"][0]["message"]
    assert runs(fake) == {}
