"""The BatchEndpoint controller over the in-memory API: readiness from Models, deployedBy,
schedules firing once per time (POST-only names), missed windows, Forbid/Replace/Allow,
history limits, invalid schedules, and releasing Models after deletion."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlkube.contract import API_VERSION
from mlkube.controllers import batch_endpoint as controller
from mlkube.k8s.errors import ApiError
from mlkube.reconcile.batch_schedule import minutes_since_epoch
from support.cluster_objects import NS, model_obj
from support.fake_kube import FakeKube

UTC = dt.UTC
NOW = dt.datetime(2026, 5, 1, 10, 20, 30, tzinfo=UTC)
EP = "scores"


def endpoint(fake: FakeKube, **spec: Any) -> str:
    body: dict[str, Any] = {
        "deployments": [{"name": "main", "model": "credit-risk-v3"}],
        "schedules": [],
    }
    body.update(spec)
    obj = fake.put(
        {
            "apiVersion": API_VERSION,
            "kind": "BatchEndpoint",
            "metadata": {"name": EP, "namespace": NS},
            "spec": body,
        }
    )
    return str(obj["metadata"]["uid"])


def schedule(name: str = "hourly", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cron": "0 * * * *",
        "input": {"uri": "s3://data/{scheduledTime:%Y/%m/%d/%H}", "format": "csv"},
        **fields,
    }


def run(fake: FakeKube, uid: str, now: dt.datetime = NOW) -> controller.Outcome:
    return controller.reconcile(fake, NS, EP, uid, now)


def status(fake: FakeKube) -> dict[str, Any]:
    return fake.stored(API_VERSION, "BatchEndpoint", EP, NS).get("status") or {}


def conditions(fake: FakeKube) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c.get("message", ""))
        for c in status(fake)["conditions"]
    }


def jobs(fake: FakeKube) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in fake.list(API_VERSION, "BatchJob", NS)}


def job_name(hour: int, name: str = "hourly") -> str:
    return f"{EP}-{name}-{minutes_since_epoch(dt.datetime(2026, 5, 1, hour, tzinfo=UTC))}"


def set_phase(fake: FakeKube, name: str, phase: str) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": phase}

    fake.mutate((API_VERSION, "BatchJob", NS, name), change)


def test_ready_with_models_and_listed_in_deployed_by(fake: FakeKube) -> None:
    uid = endpoint(fake)
    outcome = run(fake, uid)
    assert outcome.delay == controller.RESYNC_SECONDS
    assert conditions(fake)["Ready"][0] == "True"
    assert conditions(fake)["Reconciling"][0] == "False"
    assert status(fake)["defaultDeployment"] == "main"  # the only deployment
    model = fake.stored(API_VERSION, "Model", "credit-risk-v3", NS)
    assert {"kind": "BatchEndpoint", "name": EP, "namespace": NS} in model["status"]["deployedBy"]
    writes = len(fake.writes)
    run(fake, uid)
    assert len(fake.writes) == writes  # nothing changed: nothing written


def test_missing_model_is_stalled_naming_it(fake: FakeKube) -> None:
    uid = endpoint(
        fake,
        deployments=[{"name": "a", "model": "credit-risk-v3"}, {"name": "b", "model": "nope"}],
        defaultDeployment="a",
    )
    run(fake, uid)
    cond = conditions(fake)
    assert cond["Ready"][:2] == ("False", "ModelNotFound")
    assert "Model nope does not exist" in cond["Ready"][2]
    assert cond["Degraded"][0] == cond["Stalled"][0] == "True"
    assert status(fake)["defaultDeployment"] == "a"
    fake.put(model_obj("nope"))
    run(fake, uid)
    assert conditions(fake)["Ready"][0] == "True" and conditions(fake)["Stalled"][0] == "False"


def test_verifying_model_is_reconciling() -> None:
    fake = FakeKube()
    fake.put(model_obj("credit-risk-v3", phase="Verifying"))
    uid = endpoint(fake)
    run(fake, uid)
    cond = conditions(fake)
    assert cond["Ready"][:2] == ("False", "ModelNotReady")
    assert cond["Reconciling"][0] == "True" and cond["Degraded"][0] == "False"


def test_new_schedule_fires_its_latest_time_once(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule()])
    outcome = run(fake, uid)
    (name,) = jobs(fake)
    assert name == job_name(10)
    job = jobs(fake)[name]
    assert job["spec"] == {
        "endpoint": EP,
        "deployment": "main",
        "input": {"uri": "s3://data/2026/05/01/10", "type": "folder", "format": "csv"},
    }
    meta = job["metadata"]
    assert meta["labels"]["mlkube.dev/batch-endpoint"] == EP
    assert meta["labels"]["mlkube.dev/schedule"] == "hourly"
    assert meta["annotations"]["mlkube.dev/scheduled-time"] == "2026-05-01T10:00:00Z"
    assert meta["ownerReferences"][0]["uid"] == uid
    assert ("Normal", "BatchJobCreated") in [(t, r) for t, r, _ in outcome.events]
    (sched,) = status(fake)["schedules"]
    assert sched == {
        "name": "hourly",
        "lastJob": name,
        "lastScheduleTime": "2026-05-01T10:00:00Z",
        "nextScheduleTime": "2026-05-01T11:00:00Z",
        "missed": 0,
    }
    assert outcome.delay == controller.RESYNC_SECONDS  # 11:00 is further away than that
    again = run(fake, uid, dt.datetime(2026, 5, 1, 10, 58, tzinfo=UTC))
    assert list(jobs(fake)) == [name]
    assert again.delay is not None and abs(again.delay - 120) < 0.1  # sleeps until 11:00


def test_a_lost_status_never_fires_twice(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule()])
    run(fake, uid)
    fake.mutate((API_VERSION, "BatchEndpoint", NS, EP), lambda o: o.pop("status"))
    creates = len(fake.written("create"))
    run(fake, uid, NOW + dt.timedelta(minutes=1))
    assert len(jobs(fake)) == 1
    assert len(fake.written("create")) == creates  # the listed job said it fired
    assert status(fake)["schedules"][0]["lastJob"] == job_name(10)
    # Even when the job is not seen by the LIST (another operator's pass), POST gives 409.
    fake.mutate((API_VERSION, "BatchEndpoint", NS, EP), lambda o: o.pop("status"))
    fake.mutate((API_VERSION, "BatchJob", NS, job_name(10)), lambda o: o["metadata"].pop("labels"))
    run(fake, uid, NOW + dt.timedelta(minutes=2))
    assert len(jobs(fake)) == 1 and status(fake)["schedules"][0]["lastJob"] == job_name(10)


def test_outage_fires_only_the_latest_and_counts_missed(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule()])
    run(fake, uid)
    set_phase(fake, job_name(10), "Succeeded")
    outcome = run(fake, uid, dt.datetime(2026, 5, 1, 14, 30, tzinfo=UTC))
    assert sorted(jobs(fake)) == [job_name(10), job_name(14)]
    assert status(fake)["schedules"][0]["missed"] == 3  # 11:00, 12:00, 13:00
    assert "ScheduleMissed" in [r for _, r, _ in outcome.events]


def test_forbid_skips_while_running(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule()])
    run(fake, uid)
    outcome = run(fake, uid, dt.datetime(2026, 5, 1, 11, 0, 1, tzinfo=UTC))
    assert list(jobs(fake)) == [job_name(10)]
    assert status(fake)["schedules"][0]["missed"] == 1
    assert "ScheduleSkipped" in [r for _, r, _ in outcome.events]
    set_phase(fake, job_name(10), "Failed")
    run(fake, uid, dt.datetime(2026, 5, 1, 12, 0, 1, tzinfo=UTC))
    assert sorted(jobs(fake)) == [job_name(10), job_name(12)]


def test_replace_cancels_the_running_job(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule(concurrencyPolicy="Replace")])
    run(fake, uid)
    outcome = run(fake, uid, dt.datetime(2026, 5, 1, 11, 0, 1, tzinfo=UTC))
    assert jobs(fake)[job_name(10)]["spec"]["cancel"] is True
    assert "cancel" not in jobs(fake)[job_name(11)]["spec"]
    assert "BatchJobCancelled" in [r for _, r, _ in outcome.events]


def test_allow_runs_side_by_side(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule(concurrencyPolicy="Allow")])
    run(fake, uid)
    run(fake, uid, dt.datetime(2026, 5, 1, 11, 0, 1, tzinfo=UTC))
    assert all(not j["spec"].get("cancel") for j in jobs(fake).values())
    assert len(jobs(fake)) == 2


def test_history_limits_delete_the_oldest_finished(fake: FakeKube) -> None:
    uid = endpoint(
        fake,
        schedules=[schedule(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0)],
    )
    for hour, phase in ((10, "Succeeded"), (11, "Failed"), (12, "Succeeded")):
        run(fake, uid, dt.datetime(2026, 5, 1, hour, 0, 1, tzinfo=UTC))
        set_phase(fake, job_name(hour), phase)
    run(fake, uid, dt.datetime(2026, 5, 1, 12, 30, tzinfo=UTC))
    assert list(jobs(fake)) == [job_name(12)]


def test_invalid_schedule_is_reported_and_others_run(fake: FakeKube) -> None:
    uid = endpoint(
        fake,
        schedules=[schedule("bad", timeZone="Mars/Olympus"), schedule("good")],
    )
    run(fake, uid)
    cond = conditions(fake)
    assert cond["Ready"][:2] == ("False", "InvalidSchedule")
    assert "schedule bad: unknown time zone 'Mars/Olympus'" in cond["Ready"][2]
    assert list(jobs(fake)) == [job_name(10, "good")]


def test_suspended_schedule_counts_missed(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule(suspend=True)])
    run(fake, uid)
    run(fake, uid, dt.datetime(2026, 5, 1, 12, 30, tzinfo=UTC))
    assert jobs(fake) == {}
    assert status(fake)["schedules"][0]["missed"] == 2  # 11:00, 12:00


def test_release_forgets_the_deleted_endpoint(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule()])
    run(fake, uid)
    fake.delete(API_VERSION, "BatchEndpoint", EP, NS)
    assert jobs(fake) == {}  # owned: collected with the endpoint
    assert run(fake, uid).delay is None
    controller.release(fake, NS)
    model = fake.stored(API_VERSION, "Model", "credit-risk-v3", NS)
    assert model["status"].get("deployedBy", []) == []


def test_removing_a_deployment_releases_its_model(fake: FakeKube) -> None:
    uid = endpoint(
        fake,
        deployments=[
            {"name": "a", "model": "credit-risk-v3"},
            {"name": "b", "model": "credit-risk-v4"},
        ],
    )
    run(fake, uid)
    v4 = fake.stored(API_VERSION, "Model", "credit-risk-v4", NS)
    assert [r["name"] for r in v4["status"]["deployedBy"]] == [EP]
    fake.mutate(
        (API_VERSION, "BatchEndpoint", NS, EP),
        lambda o: o["spec"].update(deployments=[{"name": "a", "model": "credit-risk-v3"}]),
    )
    run(fake, uid)
    v4 = fake.stored(API_VERSION, "Model", "credit-risk-v4", NS)
    assert v4["status"].get("deployedBy", []) == []


def test_a_job_the_api_refuses_counts_missed_and_is_shown(fake: FakeKube) -> None:
    uid = endpoint(fake, schedules=[schedule()])

    def refuse(verb: str, key: Any) -> None:
        if verb == "create" and key[1] == "BatchJob":
            raise ApiError(422, "Invalid", "spec.input.uri: Invalid value")

    fake.before.append(refuse)
    outcome = run(fake, uid)
    assert jobs(fake) == {}
    assert status(fake)["schedules"][0]["missed"] == 1
    assert "BatchJob for 2026-05-01T10:00:00Z refused" in conditions(fake)["Ready"][2]
    assert "ScheduleFailed" in [r for _, r, _ in outcome.events]
    fake.before.clear()
    run(fake, uid, NOW + dt.timedelta(seconds=30))
    assert jobs(fake) == {}  # that time was handled (missed), not retried in a loop
