"""The PipelineRuns a Pipeline starts by itself (schedules, onDrift, onNewData), and reading
them back (pure).

Every name is a function of what fired it (docs/pipelines.md §5): a schedule's run of the
scheduled minute, a drift trigger's run of the episode (hash of trigger and startedAt), a data
trigger's run of the change (hash of trigger, previous and new digest). Created with POST only,
a 409 means it fired already: a restarted operator, a lost status or a second operator can
never start the same thing twice. Runs are labelled with the pipeline and their schedule or
trigger (one LIST finds them) and owned by the Pipeline (deleting it deletes the runs it
started; the Models they registered are ownerless and stay).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlkube.builders.names import label_value, selector_string
from mlkube.contract import (
    ANNOTATION_SCHEDULED_TIME,
    API_VERSION,
    KIND_PIPELINE,
    KIND_PIPELINE_RUN,
    LABEL_MANAGED_BY,
    LABEL_PIPELINE,
    LABEL_SCHEDULE,
    LABEL_TRIGGER,
    MANAGED_BY,
)
from mlkube.reconcile.batch_schedule import format_time, scheduled_job_name

MAX_NAME: Final = 63
_HASH: Final = 10
TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed", "Cancelled"})


@dataclass(frozen=True)
class PipelineRef:
    """The Pipeline that starts runs: owner, namespace and the name the runs reference."""

    name: str
    namespace: str
    uid: str


def _hashed_name(pipeline: str, tag: str, *facts: str) -> str:
    """`<pipeline>-<tag>-<hash>`, the pipeline part cut so the whole is a DNS label <= 63."""
    digest = hashlib.sha256("\0".join(facts).encode()).hexdigest()[:_HASH]
    room = MAX_NAME - len(tag) - len(digest) - 2
    head = re.sub(r"[^a-z0-9-]+", "-", pipeline.lower())[:room].strip("-.") or "p"
    return f"{head}-{tag}-{digest}"


def schedule_run_name(pipeline: str, schedule: str, instant: dt.datetime) -> str:
    """`<pipeline>-<schedule>-<unix minutes>`, as BatchEndpoint schedules name their jobs."""
    return scheduled_job_name(pipeline, schedule, instant)


def drift_run_name(pipeline: str, trigger: str, started_at: str) -> str:
    """One name per drift episode of a trigger."""
    return _hashed_name(pipeline, "drift", trigger, started_at)


def data_run_name(pipeline: str, trigger: str, before: str, after: str) -> str:
    """One name per change of content (A→B and B→A are different changes)."""
    return _hashed_name(pipeline, "data", trigger, before, after)


def source_labels(pipeline: str, *, schedule: str = "", trigger: str = "") -> dict[str, str]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PIPELINE: label_value(pipeline)}
    if schedule:
        labels[LABEL_SCHEDULE] = schedule
    if trigger:
        labels[LABEL_TRIGGER] = trigger
    return labels


def source_selector(pipeline: str, *, schedule: str = "", trigger: str = "") -> str:
    return selector_string(source_labels(pipeline, schedule=schedule, trigger=trigger))


def build_run(
    owner: PipelineRef,
    *,
    name: str,
    parameters: Mapping[str, str],
    trigger: Mapping[str, str],
    labels: Mapping[str, str],
    scheduled: dt.datetime | None = None,
) -> dict[str, Any]:
    """A PipelineRun of `owner` with `spec.trigger` = {type, name, detail}."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND_PIPELINE,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if scheduled is not None:
        meta["annotations"] = {ANNOTATION_SCHEDULED_TIME: format_time(scheduled)}
    spec: dict[str, Any] = {"pipeline": owner.name, "trigger": dict(trigger)}
    if parameters:
        spec["parameters"] = dict(parameters)
    return {"apiVersion": API_VERSION, "kind": KIND_PIPELINE_RUN, "metadata": meta, "spec": spec}


@dataclass(frozen=True)
class RunFacts:
    """A PipelineRun as the Pipeline's status and triggers need it."""

    name: str
    created: str  # creationTimestamp (RFC 3339, sorts as time)
    phase: str | None
    trigger: str  # its trigger label ("" when none)

    @property
    def active(self) -> bool:
        return self.phase not in TERMINAL_PHASES


def run_facts(obj: Mapping[str, Any]) -> RunFacts:
    meta = obj.get("metadata") or {}
    return RunFacts(
        name=str(meta.get("name")),
        created=str(meta.get("creationTimestamp") or ""),
        phase=(obj.get("status") or {}).get("phase"),
        trigger=str((meta.get("labels") or {}).get(LABEL_TRIGGER) or ""),
    )
