"""BatchEndpoint on the real control plane with the real operator: readiness from its Models,
schedules that fire once per scheduled time (also across an operator restart with its status
lost), Forbid and Replace at a real minute boundary, and history limits."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from mlkube.contract import API_VERSION
from mlkube.k8s import Kube
from mlkube.reconcile.batch_schedule import minutes_since_epoch
from support.endpoints import condition, deployed_by, make_artifact, model_object
from support.operator import run_operator
from support.waiting import wait_for

EP = "scores"


def batch_endpoint(namespace: str, model: str, schedules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "BatchEndpoint",
        "metadata": {"name": EP, "namespace": namespace},
        "spec": {"deployments": [{"name": "main", "model": model}], "schedules": schedules},
    }


def get_endpoint(kube: Kube, namespace: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, "BatchEndpoint", EP, namespace)
    assert obj is not None
    return obj


def jobs(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in kube.list(API_VERSION, "BatchJob", namespace)}


def schedule_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    for entry in (get_endpoint(kube, namespace).get("status") or {}).get("schedules") or []:
        if entry["name"] == name:
            return dict(entry)
    return {}


def recent_minute(minutes_ago: int = 2) -> dt.datetime:
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    return now - dt.timedelta(minutes=minutes_ago)


def hourly_at(t: dt.datetime, name: str = "hourly", **fields: Any) -> dict[str, Any]:
    """An hourly schedule whose latest time is `t`: it fires at once, then not for ~an hour."""
    return {
        "name": name,
        "cron": f"{t.minute} * * * *",
        "input": {"uri": "file:///data/{scheduledTime:%Y/%m/%d/%H%M}/", "format": "csv"},
        **fields,
    }


def ready_model(kube: Kube, namespace: str, tmp: Path, name: str = "credit-risk-v3") -> None:
    kube.create(model_object(name, namespace, make_artifact(tmp / name, name), "3"))


def test_ready_only_with_its_model(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    kube.create(batch_endpoint(namespace, "credit-risk-v3", []))

    def stalled() -> dict[str, Any] | None:
        obj = get_endpoint(kube, namespace)
        return obj if condition(obj, "Stalled").get("status") == "True" else None

    obj = wait_for(stalled, timeout=20, what="Stalled for the missing Model")
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ModelNotFound")
    assert "Model credit-risk-v3 does not exist" in ready["message"]
    assert obj["status"]["defaultDeployment"] == "main"

    ready_model(kube, namespace, tmp_path)
    wait_for(
        lambda: condition(get_endpoint(kube, namespace), "Ready").get("status") == "True",
        timeout=30,
        what="Ready once the Model is verified",
    )
    obj = get_endpoint(kube, namespace)
    assert condition(obj, "Stalled").get("status") == "False"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    refs = deployed_by(kube, namespace, "credit-risk-v3")
    assert {"kind": "BatchEndpoint", "name": EP, "namespace": namespace} in refs


def test_missed_time_fires_once_even_across_a_restart_without_status(
    kube: Kube, namespace: str
) -> None:
    t = recent_minute()
    expected = f"{EP}-hourly-{minutes_since_epoch(t)}"
    with run_operator(namespace):
        kube.create(batch_endpoint(namespace, "credit-risk-v3", [hourly_at(t)]))
        wait_for(lambda: expected in jobs(kube, namespace), timeout=20, what="the BatchJob")
        wait_for(
            lambda: schedule_status(kube, namespace, "hourly").get("lastJob") == expected,
            timeout=10,
            what="status.schedules[].lastJob",
        )
    job = jobs(kube, namespace)[expected]
    assert list(jobs(kube, namespace)) == [expected]
    assert job["spec"]["input"]["uri"] == t.strftime("file:///data/%Y/%m/%d/%H%M/")
    assert job["spec"]["deployment"] == "main"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "BatchEndpoint"
    status = schedule_status(kube, namespace, "hourly")
    assert status["lastScheduleTime"] == t.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status["nextScheduleTime"] == (t + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = job["metadata"]["uid"]

    # The status is only a cache: lose it, restart, and the job name still guards the time.
    # Unlabelled, the job is not even listed as the schedule's: only the POST's 409 says so.
    unlabel = {"metadata": {"labels": {"mlkube.dev/schedule": None}}}
    kube.patch(API_VERSION, "BatchJob", expected, unlabel, namespace)
    kube.patch(API_VERSION, "BatchEndpoint", EP, {"status": None}, namespace, subresource="status")
    # What is left is the CRD's status default (kstatus: not yet observed).
    assert get_endpoint(kube, namespace).get("status") == {"observedGeneration": 0}
    with run_operator(namespace):
        wait_for(
            lambda: schedule_status(kube, namespace, "hourly").get("lastJob") == expected,
            timeout=20,
            what="the restarted operator to evaluate the schedule",
        )
    assert list(jobs(kube, namespace)) == [expected]
    assert jobs(kube, namespace)[expected]["metadata"]["uid"] == created


def test_forbid_skips_and_replace_cancels_at_a_minute_boundary(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    # A verified Model and an output: a BatchJob controller, when one runs, keeps these jobs
    # active (kwok pods never finish) rather than failing them at once.
    ready_model(kube, namespace, tmp_path)

    def every_minute(name: str) -> dict[str, Any]:
        output = f"file://{tmp_path}/{name}-{{scheduledTime:%H%M}}"
        return {
            "name": name,
            "cron": "* * * * *",
            "input": {"uri": "file:///data/{scheduledTime}"},
            "output": {"uri": output},
        }

    schedules = [
        every_minute("forbid"),
        {**every_minute("replace"), "concurrencyPolicy": "Replace"},
    ]
    kube.create(batch_endpoint(namespace, "credit-risk-v3", schedules))

    def of(schedule: str) -> list[dict[str, Any]]:
        found = [
            j
            for j in jobs(kube, namespace).values()
            if j["metadata"]["labels"]["mlkube.dev/schedule"] == schedule
        ]
        return sorted(found, key=lambda j: j["metadata"]["name"])

    wait_for(lambda: of("forbid") and of("replace"), timeout=20, what="the first runs")
    # No BatchJob controller finishes these jobs here: both stay active past the next minute.
    wait_for(lambda: len(of("replace")) == 2, timeout=75, what="the next minute's run")
    first, second = of("replace")
    assert first["spec"]["cancel"] is True
    assert not second["spec"].get("cancel")
    wait_for(
        lambda: schedule_status(kube, namespace, "forbid").get("missed", 0) >= 1,
        timeout=10,
        what="Forbid counting the skipped time",
    )
    assert len(of("forbid")) == 1

    def reasons() -> set[str]:
        events = kube.list("v1", "Event", namespace)
        return {e["reason"] for e in events if e["involvedObject"]["name"] == EP}

    wanted = {"BatchJobCreated", "ScheduleSkipped", "BatchJobCancelled"}
    wait_for(lambda: wanted <= reasons(), timeout=10, what=f"Events {wanted}")


def test_history_limit_deletes_the_oldest_finished_jobs(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    ready_model(kube, namespace, tmp_path)
    t = recent_minute()
    output = {"uri": f"file://{tmp_path}/out-{{scheduledTime:%H%M}}"}
    schedule = hourly_at(t, successfulJobsHistoryLimit=1, output=output)
    kube.create(batch_endpoint(namespace, "credit-risk-v3", [schedule]))
    latest = f"{EP}-hourly-{minutes_since_epoch(t)}"
    wait_for(lambda: latest in jobs(kube, namespace), timeout=20, what="the scheduled job")
    template = jobs(kube, namespace)[latest]
    older = []
    for hours in (1, 2):  # earlier runs of the same schedule, already finished
        when = t - dt.timedelta(hours=hours)
        name = f"{EP}-hourly-{minutes_since_epoch(when)}"
        meta = {
            "name": name,
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
            "annotations": {"mlkube.dev/scheduled-time": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "ownerReferences": template["metadata"]["ownerReferences"],
        }
        kube.create({"apiVersion": API_VERSION, "kind": "BatchJob", "metadata": meta,
                     "spec": template["spec"]})  # fmt: skip
        older.append(name)

    def all_succeeded() -> bool:
        # The BatchJob controller runs these jobs too: a status write of its own computed
        # before this patch can land after it, so patch until each reads back Succeeded (a
        # terminal phase the controller never changes again).
        done = True
        for name in [*older, latest]:
            found = kube.get(API_VERSION, "BatchJob", name, namespace)
            if found is None:
                continue  # already trimmed by the history limit: what this test waits for
            if (found.get("status") or {}).get("phase") != "Succeeded":
                body = {"status": {"phase": "Succeeded"}}
                kube.patch(API_VERSION, "BatchJob", name, body, namespace, subresource="status")
                done = False
        return done

    wait_for(all_succeeded, timeout=30, interval=1.0, what="the three jobs Succeeded")
    wait_for(
        lambda: list(jobs(kube, namespace)) == [latest],
        timeout=20,
        what="the two older Succeeded jobs deleted",
    )
