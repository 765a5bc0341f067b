"""The Pipeline controller over the in-memory API: Ready/Stalled from the spec and what it
names, schedules starting one run per slot, onDrift firing once per episode (also with its
status lost), refusing within the cooldown, while its run is active and past maxRunsPerDay,
every decision in status and Events; onNewData against a real file:// prefix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pipeline_trigger_run import drift_run_name
from mlkube.controllers import pipeline as controller
from mlkube.controllers.pipeline_cache_gc import CacheCollector
from mlkube.controllers.pipeline_triggers import Polls
from mlkube.reconcile.batch_schedule import minutes_since_epoch
from support.cluster_objects import endpoint_obj
from support.fake_kube import FakeKube

API = "mlkube.dev/v1alpha1"
NS = "ml"
NOW = dt.datetime(2026, 5, 1, 10, 20, 30, tzinfo=dt.UTC)
STEP = {"name": "train", "image": "trainer@sha256:" + "e" * 64, "command": ["python", "t.py"]}
EPISODE = "2026-05-01T10:15:00Z"
# A store with nothing in it: the cache GC lists it and finds no entries.
CONFIG = OperatorConfig(allow_file_artifacts=True, artifact_store="file:///nonexistent/ptrig")


def drift_trigger(name: str = "retrain", **on: Any) -> dict[str, Any]:
    return {"name": name, "onDrift": {"endpoint": "credit", **on}}


def pipeline(fake: FakeKube, **spec: Any) -> str:
    body = {"steps": [STEP], **spec}
    obj = fake.put(
        {
            "apiVersion": API,
            "kind": "Pipeline",
            "metadata": {"name": "p", "namespace": NS},
            "spec": body,
        }
    )
    return str(obj["metadata"]["uid"])


def drifting_endpoint(fake: FakeKube, started: str | None = EPISODE, active: bool = True) -> None:
    obj = endpoint_obj()
    obj["metadata"]["namespace"] = NS
    for dep in obj["spec"]["deployments"]:
        dep["drift"] = {"enabled": True}
    episode = {"active": active, **({"startedAt": started} if started else {})}
    obj["status"] = {
        "deployments": [
            {"name": "blue", "model": "credit-risk-v3", "drift": {"episode": episode}},
            {"name": "green", "model": "credit-risk-v4", "drift": {"episode": {"active": False}}},
        ]
    }
    key = (API, "OnlineEndpoint", NS, "credit")
    if key in fake.objects:
        fake.mutate(key, lambda o: o.update(status=obj["status"]))
    else:
        fake.put(obj)


@pytest.fixture
def polls() -> Polls:
    return Polls()


def run(
    fake: FakeKube,
    uid: str,
    now: dt.datetime = NOW,
    *,
    polls: Polls | None = None,
    config: OperatorConfig | None = None,
) -> controller.Outcome:
    return controller.reconcile(
        fake,
        config or CONFIG,
        NS,
        "p",
        uid,
        now,
        polls=polls or Polls(),
        collector=CacheCollector(),
    )


def status(fake: FakeKube) -> dict[str, Any]:
    return fake.stored(API, "Pipeline", "p", NS).get("status") or {}


def condition(fake: FakeKube, type_: str) -> tuple[str, str, str]:
    c = next(c for c in status(fake)["conditions"] if c["type"] == type_)
    return c["status"], c["reason"], c.get("message", "")


def runs(fake: FakeKube) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in fake.list(API, "PipelineRun", NS)}


def trigger_status(fake: FakeKube, name: str = "retrain") -> dict[str, Any]:
    return next(t for t in status(fake)["triggers"] if t["name"] == name)


def set_phase(fake: FakeKube, name: str, phase: str, created: str = "") -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": phase}
        if created:
            obj["metadata"]["creationTimestamp"] = created

    fake.mutate((API, "PipelineRun", NS, name), change)


def reasons(outcome: controller.Outcome) -> list[str]:
    return [r for _, r, _ in outcome.events]


def test_a_valid_pipeline_is_ready_and_counts_its_runs(fake: FakeKube) -> None:
    uid = pipeline(fake)
    for name, phase in (("m1", "Succeeded"), ("m2", "Failed"), ("m3", "Running")):
        fake.put(
            {
                "apiVersion": API,
                "kind": "PipelineRun",
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "creationTimestamp": f"2026-05-01T0{name[1]}:00:00Z",
                },
                "spec": {"pipeline": "p"},
                "status": {"phase": phase},
            }
        )
    fake.put(
        {
            "apiVersion": API,
            "kind": "PipelineRun",
            "metadata": {"name": "other", "namespace": NS},
            "spec": {"pipeline": "q"},
        }
    )
    outcome = run(fake, uid)
    assert condition(fake, "Ready")[:2] == ("True", "Valid")
    assert condition(fake, "Stalled")[0] == "False"
    assert condition(fake, "Reconciling")[0] == "False"
    st = status(fake)
    assert st["observedGeneration"] == 1
    assert st["runs"] == {"active": 1, "succeeded": 1, "failed": 1}
    assert st["lastRun"] == "m3"
    assert outcome.delay == controller.RESYNC_SECONDS
    writes = len(fake.writes)
    run(fake, uid)
    assert len(fake.writes) == writes  # an unchanged status is not written again


def test_what_the_steps_name_must_exist_or_the_pipeline_is_stalled(fake: FakeKube) -> None:
    deploy = {
        "name": "ship",
        "type": "deploy",
        "dependsOn": ["reg"],
        "deploy": {"endpoint": "credit", "model": {"step": "reg"}, "canaryWeight": 10},
    }
    register = {
        "name": "reg",
        "type": "registerModel",
        "registerModel": {
            "artifact": {"step": "train", "output": "model"},
            "modelName": "credit-risk",
            "framework": "sklearn",
        },
    }
    train = {
        **STEP,
        "outputs": [{"name": "model"}],
        "inputs": [{"name": "base", "model": "credit-risk-v9"}],
    }
    uid = pipeline(fake, steps=[train, register, deploy])
    run(fake, uid, config=OperatorConfig())
    ready, reason, message = condition(fake, "Ready")
    assert (ready, reason) == ("False", "ModelNotFound")
    assert "step train input base: Model credit-risk-v9 does not exist" in message
    assert "step ship: OnlineEndpoint credit does not exist" in message
    assert "need an artifact store" in message
    assert condition(fake, "Stalled")[:2] == ("True", "ModelNotFound")


def test_an_invalid_spec_is_stalled(fake: FakeKube) -> None:
    uid = pipeline(fake, steps=[{**STEP, "dependsOn": ["nope"]}])
    run(fake, uid)
    assert condition(fake, "Ready")[:2] == ("False", "InvalidSpec")
    assert condition(fake, "Stalled")[0] == "True"


def test_a_schedule_starts_one_run_per_slot_with_its_trigger(fake: FakeKube) -> None:
    schedule = {"name": "hourly", "cron": "0 * * * *", "parameters": {"lr": "0.1"}}
    uid = pipeline(fake, schedules=[schedule], parameters=[{"name": "lr", "default": "1"}])
    outcome = run(fake, uid)
    slot = dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC)
    name = f"p-hourly-{minutes_since_epoch(slot)}"
    assert list(runs(fake)) == [name]
    created = runs(fake)[name]
    assert created["spec"] == {
        "pipeline": "p",
        "parameters": {"lr": "0.1"},
        "trigger": {
            "type": "schedule",
            "name": "hourly",
            "detail": "scheduled time 2026-05-01T10:00:00Z (2026-05-01T10:00:00+00:00 UTC)",
        },
    }
    assert created["metadata"]["labels"]["mlkube.dev/pipeline"] == "p"
    assert created["metadata"]["labels"]["mlkube.dev/schedule"] == "hourly"
    assert created["metadata"]["ownerReferences"][0]["uid"] == uid
    assert "PipelineRunCreated" in reasons(outcome)
    sched = status(fake)["schedules"][0]
    assert sched["lastRun"] == name
    assert sched["nextScheduleTime"] == "2026-05-01T11:00:00Z"
    assert status(fake)["runs"]["active"] == 1
    assert outcome.delay == controller.RESYNC_SECONDS  # the slot is 39 minutes away
    outcome = run(fake, uid, NOW + dt.timedelta(minutes=38))
    assert outcome.delay == pytest.approx(90 + controller.FIRE_SLACK)  # woken at the slot
    assert list(runs(fake)) == [name]
    # Forbid (the default): the next slot is skipped while the run is active, and says why.
    outcome = run(fake, uid, NOW + dt.timedelta(hours=1))
    assert list(runs(fake)) == [name]
    assert "ScheduleSkipped" in reasons(outcome)
    assert "still running" in status(fake)["schedules"][0]["message"]


def test_drift_fires_exactly_one_run_per_episode_even_with_the_status_lost(fake: FakeKube) -> None:
    drifting_endpoint(fake)
    uid = pipeline(
        fake,
        triggers=[{**drift_trigger(), "parameters": {"reason": "drift"}}],
        parameters=[{"name": "reason", "default": "manual"}],
    )
    outcome = run(fake, uid)
    name = drift_run_name("p", "retrain", EPISODE)
    assert list(runs(fake)) == [name]
    spec = runs(fake)[name]["spec"]
    assert spec["parameters"] == {"reason": "drift"}
    assert spec["trigger"] == {
        "type": "drift",
        "name": "retrain",
        "detail": f"endpoint credit deployment blue drift episode started {EPISODE}",
    }
    assert runs(fake)[name]["metadata"]["labels"]["mlkube.dev/trigger"] == "retrain"
    assert reasons(outcome) == ["TriggerFired"]
    st = trigger_status(fake)
    assert st["lastEpisode"] == EPISODE and st["lastRun"] == name and st["firedToday"] == 1
    assert st["message"].startswith("fired: endpoint credit deployment blue")
    assert condition(fake, "Ready")[0] == "True"
    # The same episode again: nothing new, no Event.
    assert reasons(run(fake, uid, NOW + dt.timedelta(minutes=1))) == []
    # A lost status (a restart that lost it, a second operator): the run name still guards.
    fake.mutate((API, "Pipeline", NS, "p"), lambda o: o.pop("status"))
    outcome = run(fake, uid, NOW + dt.timedelta(minutes=2))
    assert list(runs(fake)) == [name] and reasons(outcome) == []
    assert trigger_status(fake)["lastEpisode"] == EPISODE


def test_a_new_episode_is_suppressed_while_the_run_is_active_and_within_cooldown(
    fake: FakeKube,
) -> None:
    drifting_endpoint(fake)
    uid = pipeline(fake, triggers=[drift_trigger(cooldown="1h")])
    run(fake, uid)
    first = drift_run_name("p", "retrain", EPISODE)
    later = "2026-05-01T10:30:00Z"
    drifting_endpoint(fake, started=later)
    outcome = run(fake, uid, NOW + dt.timedelta(minutes=11))
    assert list(runs(fake)) == [first]
    assert reasons(outcome) == ["TriggerSuppressed"]
    assert f"run {first} of this trigger is still active" in trigger_status(fake)["message"]
    set_phase(fake, first, "Succeeded", created="2026-05-01T10:20:30Z")
    outcome = run(fake, uid, NOW + dt.timedelta(minutes=12))
    message = trigger_status(fake)["message"]
    assert reasons(outcome) == ["TriggerSuppressed"]
    assert f"suppressed: endpoint credit deployment blue drift episode started {later}" in message
    assert (
        "cooldown: last run started 2026-05-01T10:20:30Z, next possible 2026-05-01T11:20:30Z"
        in message
    )
    # The same refusal again posts no second Event; the loop wakes when the cooldown ends.
    outcome = run(fake, uid, NOW + dt.timedelta(minutes=58))
    assert reasons(outcome) == [] and outcome.delay == pytest.approx(2 * 60)
    # The cooldown over and the episode still active: it fires, once.
    outcome = run(fake, uid, NOW + dt.timedelta(minutes=61))
    second = drift_run_name("p", "retrain", later)
    assert sorted(runs(fake)) == sorted([first, second]) and reasons(outcome) == ["TriggerFired"]
    assert trigger_status(fake)["firedToday"] == 2


def test_max_runs_per_day_caps_the_episodes_of_a_day(fake: FakeKube) -> None:
    drifting_endpoint(fake)
    uid = pipeline(fake, triggers=[drift_trigger(cooldown="1m", maxRunsPerDay=1)])
    run(fake, uid)
    set_phase(fake, drift_run_name("p", "retrain", EPISODE), "Failed")
    drifting_endpoint(fake, started="2026-05-01T12:00:00Z")
    outcome = run(fake, uid, NOW + dt.timedelta(hours=2))
    assert len(runs(fake)) == 1 and reasons(outcome) == ["TriggerSuppressed"]
    assert "maxRunsPerDay 1 reached" in trigger_status(fake)["message"]
    outcome = run(fake, uid, NOW + dt.timedelta(hours=24))
    assert len(runs(fake)) == 2 and reasons(outcome) == ["TriggerFired"]
    assert trigger_status(fake)["firedToday"] == 1  # a new day window


def test_a_trigger_on_a_missing_endpoint_or_one_without_drift_stalls(fake: FakeKube) -> None:
    uid = pipeline(fake, triggers=[drift_trigger()])
    run(fake, uid)
    assert condition(fake, "Ready")[:2] == ("False", "EndpointNotFound")
    assert condition(fake, "Stalled")[2] == "trigger retrain: OnlineEndpoint credit does not exist"
    obj = endpoint_obj()
    obj["metadata"]["namespace"] = NS
    fake.put(obj)
    run(fake, uid)
    assert condition(fake, "Ready")[:2] == ("False", "DriftNotEnabled")
    fake.mutate(
        (API, "OnlineEndpoint", NS, "credit"),
        lambda o: o["spec"]["deployments"][0].update(drift={"enabled": True}),
    )
    run(fake, uid)
    assert condition(fake, "Ready")[0] == "True" and condition(fake, "Stalled")[0] == "False"
    assert runs(fake) == {}


def test_new_data_records_first_then_fires_on_a_changed_digest(
    tmp_path: Path, polls: Polls
) -> None:
    fake = FakeKube()
    data = tmp_path / "incoming"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    config = OperatorConfig(allow_file_artifacts=True)
    trigger = {"name": "fresh", "onNewData": {"uri": data.as_uri() + "/", "pollInterval": "1m"}}
    uid = pipeline(
        fake,
        triggers=[trigger],
        artifactStore=(tmp_path / "store").as_uri(),
        parameters=[{"name": "dataDigest", "default": "none"}],
    )
    outcome = run(fake, uid, polls=polls, config=config)
    first = trigger_status(fake, "fresh")["lastDigest"]
    assert first.startswith("sha256:") and runs(fake) == {}
    assert outcome.delay == pytest.approx(60)
    (data / "b.csv").write_text("x\n2\n")
    run(fake, uid, NOW + dt.timedelta(seconds=30), polls=polls, config=config)
    assert runs(fake) == {}  # not polled before pollInterval
    outcome = run(fake, uid, NOW + dt.timedelta(minutes=1), polls=polls, config=config)
    (created,) = runs(fake).values()
    digest = trigger_status(fake, "fresh")["lastDigest"]
    assert digest != first and reasons(outcome) == ["TriggerFired"]
    assert created["spec"]["parameters"] == {"dataDigest": digest}
    assert created["spec"]["trigger"]["type"] == "newData"
    run(fake, uid, NOW + dt.timedelta(minutes=2), polls=polls, config=config)
    assert len(runs(fake)) == 1
