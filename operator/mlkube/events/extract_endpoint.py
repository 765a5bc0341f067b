"""The events an OnlineEndpoint's status implies: deployments ready, split changes, the rollout's
progress (docs/rollouts.md §4) and each deployment's drift episodes.

Discriminators (what makes an occurrence unique within the endpoint): deployment x Model for
deployment.ready; the split and when it was applied for traffic.changed; the rollout revision and
its start (a retry of the same revision is a new run) plus the step for rollout events; the
episode's start for drift events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlkube.contract import KIND_ONLINE_ENDPOINT, PLURAL_ONLINE_ENDPOINTS
from mlkube.events import catalogue as c
from mlkube.events import data as d
from mlkube.events.occurrence import ObjectFacts, Occurrence

# A first deploy is recorded as a promoted rollout without steps (docs/rollouts.md §2): no
# rollout ran, so it implies no rollout events (deployment.ready tells it).
INITIAL_DEPLOY = "InitialDeploy"


def _split(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float)}


def endpoint_events(obj: Mapping[str, Any]) -> list[Occurrence]:
    facts = ObjectFacts.of(KIND_ONLINE_ENDPOINT, PLURAL_ONLINE_ENDPOINTS, obj)
    status = obj.get("status") or {}
    return [
        *deployment_events(facts, status),
        *traffic_events(facts, status),
        *rollout_events(facts, obj.get("spec") or {}, status),
        *drift_events(facts, status),
    ]


def deployment_events(facts: ObjectFacts, status: Mapping[str, Any]) -> list[Occurrence]:
    """deployment.ready for each deployment whose status records when its Model became ready."""
    out = []
    for dep in status.get("deployments") or []:
        ready_at = dep.get("readyAt")
        if not ready_at or not dep.get("model"):
            continue
        version, digest = dep.get("modelVersion"), dep.get("modelDigest")
        data = d.DeploymentReady(
            endpoint=facts.name,
            deployment=str(dep["name"]),
            model=str(dep["model"]),
            model_version=version,
            model_digest=digest,
            url=status.get("url"),
            replicas=int(dep.get("readyReplicas") or 0),
        )
        out.append(
            facts.occurrence(
                c.DEPLOYMENT_READY,
                (dep["name"], dep["model"], digest, ready_at),
                ready_at,
                data,
                model_version=version,
                model_digest=digest,
            )
        )
    return out


def traffic_events(facts: ObjectFacts, status: Mapping[str, Any]) -> list[Occurrence]:
    """traffic.changed for the last change the status records (status.lastTrafficChange)."""
    change = status.get("lastTrafficChange") or {}
    at = change.get("at")
    if not at:
        return []
    traffic, mirror = _split(status.get("traffic")), _split(status.get("mirror"))
    data = d.TrafficChanged(
        endpoint=facts.name,
        traffic=traffic,
        mirror=mirror,
        previous=d.PreviousSplit(
            traffic=_split(change.get("previousTraffic")),
            mirror=_split(change.get("previousMirror")),
        ),
    )
    return [facts.occurrence(c.TRAFFIC_CHANGED, (traffic, mirror, at), at, data)]


def _step_fields(step: object) -> tuple[int | None, int | None]:
    """(weight, mirror) a step sets, when it sets one."""
    if not isinstance(step, Mapping):
        return None, None
    if isinstance(step.get("setWeight"), int):
        return int(step["setWeight"]), 0
    if isinstance(step.get("setMirror"), int):
        return 0, int(step["setMirror"])
    return None, None


def rollout_events(
    facts: ObjectFacts, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> list[Occurrence]:
    """started, each step reached, paused, promoted | aborted of the rollout in status.rollout."""
    rollout = status.get("rollout") or {}
    revision, started_at = rollout.get("revision"), rollout.get("startedAt")
    if not revision or not started_at or rollout.get("reason") == INITIAL_DEPLOY:
        return []
    plan = spec.get("rollout") or {}
    base: dict[str, Any] = {
        "endpoint": facts.name,
        "stable": plan.get("stable"),
        "candidate": plan.get("candidate"),
        "revision": str(revision),
        "started_at": str(started_at),
    }
    run = (revision, started_at)
    steps = int(rollout.get("steps") or len(plan.get("steps") or []))
    phase = rollout.get("phase")
    start_traffic = _split(rollout.get("startTraffic"))
    out = [
        facts.occurrence(
            c.ROLLOUT_STARTED,
            run,
            str(started_at),
            d.RolloutStarted(**base, steps=steps, start_traffic=start_traffic),
        )
    ]
    index = rollout.get("stepIndex")
    spec_steps = plan.get("steps") or []
    if isinstance(index, int) and steps > 0:
        current = min(index, steps - 1)
        # Only the current step's start is recorded; earlier steps were reached no later.
        step_time = rollout.get("stepStartedAt") or started_at
        for i in range(current + 1):
            step = spec_steps[i] if i < len(spec_steps) else None
            weight, mirror = _step_fields(step)
            if i == index and phase in ("Progressing", "Paused"):
                weight, mirror = rollout.get("weight", weight), rollout.get("mirror", mirror)
            data = d.RolloutStep(
                **base, step_index=i, steps=steps, step=step, weight=weight, mirror=mirror
            )
            out.append(facts.occurrence(c.ROLLOUT_STEP, (*run, i), step_time, data))
    if phase == "Paused":
        reason = str(rollout.get("reason") or "Paused")
        at = rollout.get("pausedAt") or rollout.get("stepStartedAt") or started_at
        paused = d.RolloutPaused(
            **base,
            step_index=int(index or 0),
            reason=reason,
            message=rollout.get("message"),
        )
        out.append(facts.occurrence(c.ROLLOUT_PAUSED, (*run, index, reason), at, paused))
    finished = rollout.get("finishedAt")
    if phase == "Promoted":
        promoted = d.RolloutPromoted(
            **base, traffic=_split(status.get("traffic")), mirror=_split(status.get("mirror"))
        )
        out.append(facts.occurrence(c.ROLLOUT_PROMOTED, run, finished, promoted))
    elif phase == "Aborted":
        abort = rollout.get("abort") or {}
        value = abort.get("value")
        aborted = d.RolloutAborted(
            **base,
            metric=abort.get("metric"),
            value=float(value) if isinstance(value, int | float) else None,
            condition=abort.get("condition"),
            message=abort.get("message") or rollout.get("message"),
            traffic=start_traffic,
        )
        out.append(facts.occurrence(c.ROLLOUT_ABORTED, run, finished, aborted))
    return out


def drift_events(facts: ObjectFacts, status: Mapping[str, Any]) -> list[Occurrence]:
    """drift.detected for the active episode and drift.ended (and its detected) for the last
    finished one, per deployment."""
    out = []
    for dep in status.get("deployments") or []:
        drift = dep.get("drift") or {}
        name, model = str(dep.get("name")), str(dep.get("model"))
        where: dict[str, Any] = {"endpoint": facts.name, "deployment": name, "model": model}
        last = drift.get("lastEpisode") or {}
        if last.get("startedAt") and last.get("endedAt"):
            started, ended = str(last["startedAt"]), str(last["endedAt"])
            # Detected again (same id) in case the operator missed the episode's start.
            detected = d.DriftDetected(**where, started_at=started)
            out.append(facts.occurrence(c.DRIFT_DETECTED, (name, started), started, detected))
            end = d.DriftEnded(**where, started_at=started, ended_at=ended)
            out.append(facts.occurrence(c.DRIFT_ENDED, (name, started), ended, end))
        episode = drift.get("episode") or {}
        if episode.get("active") and episode.get("startedAt"):
            started = str(episode["startedAt"])
            detected = d.DriftDetected(
                **where,
                drifted_ratio=drift.get("driftedRatio"),
                top_features=[
                    d.DriftFeature.model_validate(f) for f in drift.get("topFeatures") or []
                ],
                started_at=started,
            )
            out.append(facts.occurrence(c.DRIFT_DETECTED, (name, started), started, detected))
    return out
