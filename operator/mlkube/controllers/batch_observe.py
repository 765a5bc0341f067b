"""What a BatchJob's steps reported: Job conditions, step summaries, progress, the manifest.

A step's summary is read from its pod's termination message first (no store access needed),
then from the copy in the output (`_mlkube/plan-summary.json`, the resume work list,
`_mlkube/manifest.json`) when the pod is gone or wrote none. Progress comes only from the
store. An output the operator may not or cannot read is not an error: the status keeps its
last counts and the Jobs' conditions still drive the phases.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from mlkube.builders.batch_job import CONTAINER, work_path
from mlkube.builders.batch_job_state import Observed, progress_plan
from mlkube.builders.batch_plan import PlanError, plan_digest
from mlkube.builders.batch_resume import parse_work
from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers.batch_store import (
    MANIFEST_CAP,
    SUMMARY_CAP,
    WORK_CAP,
    OutputReader,
    StoreUnreadable,
)
from mlkube.controllers.kube import Kube
from mlkube.reconcile.batch_job_facts import (
    MergeResult,
    PlanResult,
    job_facts,
    parse_merge_result,
    parse_plan_result,
)
from mlkube.reconcile.batch_progress import Progress, parse_progress, sum_progress

log = logging.getLogger(__name__)
PLAN_SUMMARY = "_mlkube/plan-summary.json"
MANIFEST = "_mlkube/manifest.json"


def pod_message(kube: Kube, namespace: str, job_name: str) -> str | None:
    """The newest termination message of the step's `scorer` container, if any."""
    pods = kube.list("v1", "Pod", namespace, label_selector=f"job-name={job_name}")
    pods.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))
    for pod in reversed(pods):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if status.get("name") == CONTAINER and terminated.get("message"):
                return str(terminated["message"])
    return None


def _reader(config: OperatorConfig, namespace: str, output: str | None) -> OutputReader | None:
    if not output:
        return None
    try:
        return OutputReader(output, namespace, config)
    except StoreUnreadable as err:
        log.info("not reading batch output %s: %s", output, err)
        return None


def _plan_from_store(reader: OutputReader, job: str, resume: bool) -> PlanResult | None:
    if not resume:
        return parse_plan_result(reader.read(PLAN_SUMMARY, SUMMARY_CAP))
    data = reader.read(work_path(job), WORK_CAP)
    if data is None:
        return None
    try:
        work = parse_work(data)
    except PlanError as err:
        return PlanResult(error=f"unreadable work list: {err}")
    body = {
        "digest": plan_digest(data),
        "remaining": len(work.remaining),
        "invalidated": work.invalidated,
    }
    return parse_plan_result(json.dumps(body), resume=True)


def observe_results(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    obs: Observed,
    jobs: dict[str, dict[str, Any]],
) -> Observed:
    """`obs` with the Jobs' facts and whatever the steps reported that this pass needs."""
    facts = {step: job_facts(job) for step, job in jobs.items()}
    obs = replace(obs, jobs=facts)
    terminal = obs.status.get("phase") in ("Succeeded", "Failed", "Cancelled")
    if terminal or obs.spec is None:
        return obs
    reader: OutputReader | None = None
    resume = bool(obs.spec.resume_from)
    plan_result: PlanResult | None = None
    progress: Progress | None = None
    merge_result: MergeResult | None = None
    unreadable = False
    try:
        plan = facts.get("plan")
        if not obs.status.get("plan") and plan is not None and plan.finished:
            message = pod_message(kube, namespace, plan.name)
            plan_result = parse_plan_result(message, resume=resume)
            if plan_result is None and plan.finished == "Complete":
                reader = reader or _reader(config, namespace, obs.output)
                if reader is not None:
                    plan_result = _plan_from_store(reader, obs.name, resume)
        summed_against = progress_plan(obs.status)
        if summed_against is not None and "score" in facts and "merge" not in facts:
            reader = reader or _reader(config, namespace, obs.output)
            unreadable = reader is None
            if reader is not None:
                docs = [
                    d
                    for raw in reader.progress_files()
                    if (d := parse_progress(raw, summed_against.digest)) is not None
                ]
                progress = sum_progress(summed_against, docs) if docs else None
        merge = facts.get("merge")
        if merge is not None and merge.finished:
            merge_result = parse_merge_result(pod_message(kube, namespace, merge.name))
            if merge_result is None and merge.finished == "Complete":
                reader = reader or _reader(config, namespace, obs.output)
                if reader is not None:
                    merge_result = parse_merge_result(
                        reader.read(MANIFEST, MANIFEST_CAP), MANIFEST_CAP
                    )
    except StoreUnreadable as err:
        log.info("batch output %s unreadable this pass: %s", obs.output, err)
        unreadable = True
    return replace(obs, plan_result=plan_result, progress=progress, merge_result=merge_result,
                   store_unreadable=unreadable)  # fmt: skip
