"""Pipeline schedules and triggers on the real control plane with the real operator: a schedule
starts the run of its slot once (also across a restart with the status lost) and an
every-minute schedule the next slot at the minute boundary; a drift episode written into an
OnlineEndpoint's status (the status subresource, as the drift monitor writes it) starts
exactly one run within seconds, never a second for the same episode (a restart included), and
a new episode inside the cooldown is suppressed with the reason in status and an Event;
new data under a MinIO prefix starts one run, and expired cache entries there are deleted;
kstatus (the real library) judges a Pipeline whose trigger names a missing endpoint Failed,
then Current as soon as the endpoint exists."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.pipeline_trigger_run import drift_run_name
from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from mlkube.reconcile.batch_schedule import minutes_since_epoch
from support.endpoints import blue_green_spec, create_ready_models, endpoint_object
from support.flux import ACCESS_KEY, SECRET_KEY, MinioBucket, minio_bucket
from support.kstatus import compute
from support.operator import patched_env, run_operator
from support.waiting import wait_for

STEP = {"name": "train", "image": "python@sha256:" + "1" * 64,
        "command": ["python", "-c", "print('train')"]}  # fmt: skip


def pipeline(kube: Kube, namespace: str, store: str, **spec: Any) -> None:
    kube.create({"apiVersion": API_VERSION, "kind": "Pipeline",
                 "metadata": {"name": "p", "namespace": namespace},
                 "spec": {"steps": [STEP], "artifactStore": store, **spec}})  # fmt: skip


def get_pipeline(kube: Kube, namespace: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "Pipeline", "p", namespace)
    assert obj is not None
    return obj


def runs(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in kube.list(API_VERSION, "PipelineRun", namespace)}


def entry(kube: Kube, namespace: str, field: str, name: str) -> dict[str, Any]:
    for item in (get_pipeline(kube, namespace).get("status") or {}).get(field) or []:
        if item["name"] == name:
            return dict(item)
    return {}


def ready(kube: Kube, namespace: str) -> str:
    conds = (get_pipeline(kube, namespace).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conds if c["type"] == "Ready"), "")


def events(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    found = kube.list("v1", "Event", namespace)
    return [e for e in found if e["involvedObject"]["kind"] == "Pipeline"]


def stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_schedule_starts_its_slot_once_even_across_a_restart_without_status(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    slot = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=2)
    expected = f"p-hourly-{minutes_since_epoch(slot)}"
    schedule = {"name": "hourly", "cron": f"{slot.minute} * * * *", "parameters": {"lr": "0.5"}}
    with run_operator(namespace):
        pipeline(kube, namespace, tmp_path.as_uri(), schedules=[schedule],
                 parameters=[{"name": "lr", "default": "0.1"}])  # fmt: skip
        wait_for(lambda: expected in runs(kube, namespace), timeout=20, what="the slot's run")
        wait_for(lambda: entry(kube, namespace, "schedules", "hourly").get("lastRun") == expected,
                 timeout=10, what="status.schedules[].lastRun")  # fmt: skip
    run = runs(kube, namespace)[expected]
    assert list(runs(kube, namespace)) == [expected]
    assert run["spec"]["trigger"]["type"] == "schedule"
    assert run["spec"]["trigger"]["detail"].startswith(f"scheduled time {stamp(slot)}")
    assert run["spec"]["parameters"] == {"lr": "0.5"}
    assert run["metadata"]["labels"]["mlkube.dev/pipeline"] == "p"
    status = entry(kube, namespace, "schedules", "hourly")
    assert status["lastScheduleTime"] == stamp(slot)
    assert status["nextScheduleTime"] == stamp(slot + dt.timedelta(hours=1))
    assert ready(kube, namespace) == "True"
    uid = run["metadata"]["uid"]
    # The status is only a cache: lose it, restart, and the run's name still guards the slot.
    kube.patch(API_VERSION, "Pipeline", "p", {"status": None}, namespace, subresource="status")
    with run_operator(namespace):
        wait_for(lambda: entry(kube, namespace, "schedules", "hourly").get("lastRun") == expected,
                 timeout=20, what="the restarted operator to evaluate the schedule")  # fmt: skip
    assert list(runs(kube, namespace)) == [expected]
    assert runs(kube, namespace)[expected]["metadata"]["uid"] == uid


def test_an_every_minute_schedule_starts_the_next_slot_at_the_boundary(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    schedule = {"name": "often", "cron": "* * * * *", "concurrencyPolicy": "Allow"}
    with run_operator(namespace):
        pipeline(kube, namespace, tmp_path.as_uri(), schedules=[schedule])
        first = wait_for(lambda: sorted(runs(kube, namespace)), timeout=20, what="a first run")
        # The next minute's run comes at the boundary, without waiting for a resync.
        both = wait_for(lambda: len(runs(kube, namespace)) >= 2 and sorted(runs(kube, namespace)),
                        timeout=75, what="the next minute's run")  # fmt: skip
    minutes = sorted(int(name.rsplit("-", 1)[1]) for name in both[:2])
    assert minutes[1] == minutes[0] + 1, both
    assert first[0] in both
    for name, run in runs(kube, namespace).items():
        scheduled = run["metadata"]["annotations"]["mlkube.dev/scheduled-time"]
        slot = dt.datetime.strptime(scheduled, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        assert name == f"p-often-{minutes_since_epoch(slot)}"
        created = dt.datetime.strptime(
            run["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"
        ).replace(tzinfo=dt.UTC)
        if name != first[0]:
            assert (created - slot).total_seconds() < 20, (name, created, slot)  # not a resync


def set_episode(kube: Kube, namespace: str, started: str | None, active: bool = True) -> None:
    """Write blue's drift episode into the endpoint's status, as the drift monitor does, until
    it reads back (the endpoint controller's own status writes may race the first patch)."""

    def written() -> bool:
        obj = kube.get(API_VERSION, "OnlineEndpoint", "credit", namespace) or {}
        deployments = (obj.get("status") or {}).get("deployments") or []
        if not any(d.get("name") == "blue" for d in deployments):
            return False
        episode = {"active": active, **({"startedAt": started} if started else {})}
        current = [((d.get("drift") or {}).get("episode")) for d in deployments
                   if d.get("name") == "blue"]  # fmt: skip
        if current and all(c and c.get("active") == active and c.get("startedAt") == started
                           for c in current):  # fmt: skip
            return True
        for dep in deployments:
            if dep.get("name") == "blue":
                dep["drift"] = {**(dep.get("drift") or {}), "episode": episode}
        patch = {"status": {"deployments": deployments}}
        kube.patch(API_VERSION, "OnlineEndpoint", "credit", patch, namespace, subresource="status")
        return False

    wait_for(written, timeout=30, interval=0.5, what=f"the drift episode {started}")


def test_a_drift_episode_fires_exactly_one_run_and_the_next_waits_for_the_cooldown(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    trigger = {"name": "retrain", "onDrift": {"endpoint": "credit", "deployment": "blue",
                                              "cooldown": "1h"}}  # fmt: skip
    first_episode = stamp(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    first = drift_run_name("p", "retrain", first_episode)
    with run_operator(namespace):
        create_ready_models(kube, namespace, tmp_path)
        spec = blue_green_spec()
        for dep in spec["deployments"]:
            dep["drift"] = {"enabled": True}
        kube.create(endpoint_object("credit", namespace, spec))
        pipeline(kube, namespace, tmp_path.as_uri(), triggers=[trigger])
        wait_for(lambda: ready(kube, namespace) == "True", timeout=30, what="Pipeline Ready")
        assert runs(kube, namespace) == {}
        started = time.monotonic()
        set_episode(kube, namespace, first_episode)
        wait_for(lambda: first in runs(kube, namespace), timeout=10, what="the drift run")
        latency = time.monotonic() - started  # the loop's own resync is 300 s away
        wait_for(lambda: entry(kube, namespace, "triggers", "retrain").get("lastEpisode")
                 == first_episode, timeout=10, what="status.triggers[].lastEpisode")  # fmt: skip
    print(f"\ndrift episode written -> PipelineRun created: {latency:.2f}s (upper bound)")
    run = runs(kube, namespace)[first]
    assert run["spec"]["trigger"] == {
        "type": "drift", "name": "retrain",
        "detail": f"endpoint credit deployment blue drift episode started {first_episode}",
    }  # fmt: skip
    assert run["metadata"]["labels"]["mlkube.dev/pipeline"] == "p"
    fired = [e for e in events(kube, namespace) if e["reason"] == "TriggerFired"]
    assert len(fired) == 1 and first in fired[0]["message"]
    # The same episode, written again, and an operator restart: still exactly one run.
    set_episode(kube, namespace, first_episode)
    kube.patch(API_VERSION, "Pipeline", "p", {"status": None}, namespace, subresource="status")
    with run_operator(namespace):
        wait_for(lambda: entry(kube, namespace, "triggers", "retrain").get("lastEpisode")
                 == first_episode, timeout=20, what="the restarted operator's pass")  # fmt: skip
        assert list(runs(kube, namespace)) == [first]
        # The run ends; a new episode inside the cooldown is suppressed.
        kube.patch(API_VERSION, "PipelineRun", first, {"spec": {"cancel": True}}, namespace)

        def first_status() -> dict[str, Any]:
            return dict(runs(kube, namespace)[first].get("status") or {})

        try:
            # Cancelled, or Failed already (kwok "runs" the step pod without a summary).
            wait_for(lambda: first_status().get("phase") in ("Cancelled", "Failed"), timeout=60,
                     interval=0.5, what="the first run finished")  # fmt: skip
        except AssertionError as err:
            raise AssertionError(f"{err}; the run's status: {first_status()}") from err
        second_episode = stamp(dt.datetime.now(dt.UTC))
        set_episode(kube, namespace, second_episode)

        def suppressed() -> str:
            message = str(entry(kube, namespace, "triggers", "retrain").get("message") or "")
            return message if message.startswith("suppressed") else ""

        message = wait_for(suppressed, timeout=10, what="the suppression in status")
        assert f"drift episode started {second_episode}" in message
        assert "cooldown: last run started" in message
        wait_for(lambda: any(e["reason"] == "TriggerSuppressed" for e in events(kube, namespace)),
                 timeout=10, what="a TriggerSuppressed Event")  # fmt: skip
        time.sleep(2)  # a few more passes (kicked by the status writes) change nothing
    assert list(runs(kube, namespace)) == [first]
    assert len([e for e in events(kube, namespace) if e["reason"] == "TriggerFired"]) == 1


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[MinioBucket]:
    """MinIO; the operator (in-process) reaches it through the standard S3 variables."""
    with minio_bucket(tmp_path, "pipelines") as found:
        env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
               "AWS_DEFAULT_REGION": "us-east-1",
               "MLKUBE_S3_ENDPOINT_URL": f"http://{found.endpoint}"}  # fmt: skip
        with patched_env(env):
            yield found


def test_new_data_in_minio_fires_one_run_and_expired_cache_entries_go(
    kube: Kube, namespace: str, bucket: MinioBucket
) -> None:
    s3 = bucket.client()
    s3.pipe("pipelines/incoming/day1.csv", b"x,y\n1,2\n")
    cache = f"pipelines/store/{namespace}/_mlkube/pipeline-cache"
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    s3.pipe(
        f"{cache}/{'a' * 64}.json", json.dumps({"created": old, "maxAgeSeconds": 3600}).encode()
    )
    s3.pipe(
        f"{cache}/{'b' * 64}.json", json.dumps({"created": old, "maxAgeSeconds": 86400}).encode()
    )
    trigger = {
        "name": "fresh",
        "onNewData": {"uri": "s3://pipelines/incoming/", "pollInterval": "1s"},
    }
    with run_operator(namespace):
        pipeline(kube, namespace, "s3://pipelines/store", triggers=[trigger],
                 parameters=[{"name": "dataDigest", "default": "none"}])  # fmt: skip
        first = wait_for(lambda: entry(kube, namespace, "triggers", "fresh").get("lastDigest"),
                         timeout=20, what="the first observation")  # fmt: skip
        assert runs(kube, namespace) == {}  # the first observation only records
        wait_for(lambda: not s3.exists(f"{cache}/{'a' * 64}.json"), timeout=20,
                 what="the expired cache entry deleted")  # fmt: skip
        assert s3.exists(f"{cache}/{'b' * 64}.json")
        s3.pipe("pipelines/incoming/day2.csv", b"x,y\n3,4\n")
        (name,) = wait_for(lambda: list(runs(kube, namespace)), timeout=20, what="the data run")
        time.sleep(3)  # three more polls of the unchanged prefix start nothing
    assert list(runs(kube, namespace)) == [name]
    run = runs(kube, namespace)[name]
    digest = entry(kube, namespace, "triggers", "fresh")["lastDigest"]
    assert digest != first
    assert run["spec"]["parameters"] == {"dataDigest": digest}
    assert run["spec"]["trigger"]["type"] == "newData"
    assert digest in run["spec"]["trigger"]["detail"]


def test_kstatus_sees_a_trigger_on_a_missing_endpoint_as_failed_until_it_exists(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    trigger = {"name": "retrain", "onDrift": {"endpoint": "credit"}}
    pipeline(kube, namespace, tmp_path.as_uri(), triggers=[trigger])
    assert compute(get_pipeline(kube, namespace))["status"] == "InProgress"  # not seen yet
    with run_operator(namespace):

        def judged(status: str) -> dict[str, Any] | None:
            result = compute(get_pipeline(kube, namespace))
            return result if result["status"] == status else None

        failed = wait_for(lambda: judged("Failed"), timeout=20, what="kstatus Failed")
        assert "OnlineEndpoint credit does not exist" in failed["message"]
        spec = blue_green_spec()
        spec["deployments"][0]["drift"] = {"enabled": True}
        kube.create(endpoint_object("credit", namespace, spec))
        # The endpoint's own watch event kicks the Pipeline: no resync wait.
        wait_for(lambda: judged("Current"), timeout=10, what="kstatus Current")
    assert runs(kube, namespace) == {}
