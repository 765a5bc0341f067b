"""What a PipelineRun's step Jobs say: which attempts exist, how they ended, their summaries.

A Job belongs to the run when it carries the run's label and controller reference (uid): a
run recreated under the same name never adopts the old one's Jobs. A finished attempt's
summary is read from the termination message of its pod's `outputs` container (no store access
needed), else from `<prefix>/_mlkube/summary.json` when the pod is gone; a failed attempt's
message from whichever container failed (the user's `main` reports its last log lines:
FallbackToLogsOnError).
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Final

from mlkube import contract as c
from mlkube.builders import pipeline_contract as pc
from mlkube.builders import pipeline_summary as ps
from mlkube.builders.names import label_value
from mlkube.builders.operator_config import OperatorConfig
from mlkube.builders.pipeline_contract import ContractError
from mlkube.builders.pipeline_step import (
    INPUTS_CONTAINER,
    MAIN_CONTAINER,
    OUTPUTS_CONTAINER,
)
from mlkube.controllers import pipeline_store as store
from mlkube.controllers.kube import Kube

log = logging.getLogger(__name__)
SUMMARY_CAP: Final = ps.MAX_STORED_BYTES
MESSAGE_CAP: Final = 1024


def owned_jobs(kube: Kube, namespace: str, run: str, uid: str) -> list[dict[str, Any]]:
    items = kube.list(
        "batch/v1", "Job", namespace, label_selector=f"{c.LABEL_PIPELINE_RUN}={label_value(run)}"
    )
    mine = []
    for job in items:
        refs = [r for r in (job.get("metadata") or {}).get("ownerReferences") or []
                if r.get("controller")]  # fmt: skip
        if refs and refs[0].get("uid") == uid:
            mine.append(job)
    return mine


def _pods(kube: Kube, namespace: str, job: str) -> list[dict[str, Any]]:
    pods = kube.list("v1", "Pod", namespace, label_selector=f"job-name={job}")
    pods.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", "")))
    return pods


def _terminated(pod: dict[str, Any], container: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in (pod.get("status") or {}).get(key) or []:
        if status.get("name") == container:
            return dict((status.get("state") or {}).get("terminated") or {})
    return {}


def image_id(kube: Kube, namespace: str, job: str) -> str:
    """The kubelet's imageID of `main` (recorded whatever the cache decided)."""
    for pod in reversed(_pods(kube, namespace, job)):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == MAIN_CONTAINER and status.get("imageID"):
                return str(status["imageID"])
    return ""


def parse_summary(text: str | bytes | None, *, complete: bool = False) -> dict[str, Any] | None:
    """The outputs container's summary (builders/pipeline_summary.py) as status outputs and
    metrics, or None when the text is not a successful one (or, with `complete`, a cut one:
    the termination message is at most 4 KiB, the stored copy is whole)."""
    if not text:
        return None
    try:
        summary = ps.parse_summary(text)
    except ContractError:
        return None
    if not summary.succeeded or (complete and summary.truncated):
        return None
    outputs = []
    for out in summary.outputs:
        body = {"name": out.name, "type": out.type, "uri": out.uri, "digest": out.digest,
                "value": out.value, "size": out.size}  # fmt: skip
        outputs.append({k: v for k, v in body.items() if v is not None})
    return {"outputs": outputs, "metrics": summary.metrics}


def read_summary(
    kube: Kube, config: OperatorConfig, namespace: str, job: str, prefix: str
) -> dict[str, Any] | None:
    for pod in reversed(_pods(kube, namespace, job)):
        message = _terminated(pod, OUTPUTS_CONTAINER).get("message")
        found = parse_summary(message, complete=True)
        if found is not None:
            return found
    try:
        fs_doc = store.read_json(pc.summary_uri(prefix), namespace, config, SUMMARY_CAP)
    except store.StoreUnreadable as err:
        log.info("step summary of %s unreadable: %s", job, err)
        return None
    return parse_summary(json.dumps(fs_doc)) if isinstance(fs_doc, dict) else None


def failure_message(kube: Kube, namespace: str, job: str, fallback: str) -> str:
    """Why the attempt failed, in the words of the container that failed."""
    for pod in reversed(_pods(kube, namespace, job)):
        for name, init in ((INPUTS_CONTAINER, True), (MAIN_CONTAINER, False),
                           (OUTPUTS_CONTAINER, False)):  # fmt: skip
            term = _terminated(pod, name, init)
            if term and term.get("exitCode", 0) != 0:
                said = str(term.get("message") or term.get("reason") or "").strip()
                text = f"{name} exited {term.get('exitCode')}" + (f": {said}" if said else "")
                return text[-MESSAGE_CAP:]
    return (fallback or "the step's Job failed")[-MESSAGE_CAP:]


STUCK_SECONDS: Final = 30.0


def stuck_main(kube: Kube, namespace: str, job: str, now: datetime.datetime) -> str | None:
    """Why the attempt can never finish, or None: `main` ended without the wrapper writing an
    exit code (it never started: no /bin/sh in the image, a bad command), so `outputs` waits
    for ever. A main that ran writes the exit code and `outputs` ends within a second; so a
    main terminated for longer than STUCK_SECONDS beside a running `outputs` is stuck."""
    for pod in reversed(_pods(kube, namespace, job)):
        main = _terminated(pod, MAIN_CONTAINER)
        if not main or _terminated(pod, OUTPUTS_CONTAINER):
            continue
        try:
            ended = datetime.datetime.fromisoformat(
                str(main.get("finishedAt")).replace("Z", "+00:00")
            )
        except ValueError:
            continue
        if (now - ended).total_seconds() < STUCK_SECONDS:
            return None
        said = str(main.get("message") or main.get("reason") or "").strip()
        return f"main could not run (exit {main.get('exitCode')}" + (f": {said})" if said else ")")
    return None
