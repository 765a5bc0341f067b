"""`status.deployments[].drift`, the `DriftDetected` condition and the drift Events.

The drift monitor polls every replica's sidecar, merges the summaries
(`mlkube.reconcile.drift_merge`) and hands the result here together with what went wrong on
the way (no baseline, unreadable baseline, no replica answering). The entry keeps the latest
merged numbers, the top features and the damped episode (`mlkube.reconcile.drift_episodes`);
the condition is True while any deployment is in an episode. The entry is built as the API's
`DriftStatus` (messages bounded), so an entry the CRD would refuse fails here, not at the API
server. Pure: inputs and clock in, dicts out.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mlkube.api.common import MAX_SHORT_TEXT, bound_message
from mlkube.api.endpoint import MAX_DRIFT_METHOD, DriftStatus
from mlkube.reconcile.apply_needed import same_status
from mlkube.reconcile.drift_episodes import (
    EpisodePolicy,
    episode_from_status,
    episode_to_status,
    format_time,
    parse_time,
    step_episode,
)

CONDITION: Final = "DriftDetected"
TOP_FEATURES: Final = 10
EVALUATED: Final = "Evaluated"
WINDOW_FILLING: Final = "WindowFilling"
NO_REPLICA: Final = "NoReplicaReporting"
BASELINE_MISSING: Final = "DriftBaselineMissing"
BASELINE_UNREADABLE: Final = "DriftBaselineUnreadable"
# Reasons announced with a Warning Event when a deployment enters them.
ANNOUNCED: Final = frozenset({BASELINE_MISSING, BASELINE_UNREADABLE})

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class DriftObservation:
    """One poll of a deployment: the merged summary, or why there is none."""

    merged: Mapping[str, Any] | None = None
    problem: tuple[str, str] | None = None  # (reason, message) when nothing was merged
    replicas_reporting: int = 0
    replicas_failed: int = 0
    note: str = ""  # appended to the message, e.g. unknown feature names


def _short(value: float | None) -> float | None:
    """Four significant digits: scores move on every poll; status should not churn on noise."""
    return None if value is None else float(f"{value:.4g}")


def top_features(
    features: Sequence[Mapping[str, Any]], limit: int = TOP_FEATURES
) -> list[dict[str, Any]]:
    """Features with a score, highest score/threshold first (ties by name)."""
    scored = [f for f in features if f.get("score") is not None]
    scored.sort(key=lambda f: (-float(f["score"]) / max(float(f["threshold"]), 1e-12), f["name"]))
    out = []
    for f in scored[:limit]:
        out.append(
            {
                # Names come from the profile and the sidecars' summaries: bounded for status.
                "name": bound_message(str(f["name"]), MAX_SHORT_TEXT),
                "method": bound_message(str(f["method"]), MAX_DRIFT_METHOD),
                "score": _short(float(f["score"])),
                "threshold": _short(float(f["threshold"])),
                "drifted": bool(f["drifted"]),
            }
        )
    return out


def _verdict(merged: Mapping[str, Any]) -> bool | None:
    """The dataset verdict once the window is full; None while it fills (no evidence yet)."""
    return bool(merged["datasetDrift"]["detected"]) if merged.get("ready") else None


def _evaluated_fields(merged: Mapping[str, Any]) -> dict[str, Any]:
    dataset = merged["datasetDrift"]
    prediction = merged.get("prediction")
    fields: dict[str, Any] = {
        "detected": bool(dataset["detected"]),
        "driftedFeatures": int(dataset["driftedFeatures"]),
        "evaluatedFeatures": int(dataset["evaluatedFeatures"]),
        "driftedRatio": _short(float(dataset["ratio"])) or 0.0,
        "samples": int(merged["windowSamples"]),
        "windowSize": int(merged["windowSize"]),
        "samplesDropped": int(merged["samplesDropped"]),
        "topFeatures": top_features(merged["features"]),
    }
    if prediction is not None:
        fields["predictionDrifted"] = bool(prediction["drifted"])
    evaluated_at = format_time(parse_time(merged.get("evaluatedAt")))
    if evaluated_at is not None:
        fields["evaluatedAt"] = evaluated_at
    return fields


def _message(merged: Mapping[str, Any], reporting: int) -> str:
    dataset = merged["datasetDrift"]
    replicas = f"{reporting} replica{'s' if reporting != 1 else ''}"
    window = f"window {merged['windowSamples']}/{merged['windowSize']} from {replicas}"
    if not merged.get("ready"):
        return f"{window}: drift is judged once the window is full"
    drifted = [f["name"] for f in merged["features"] if f["drifted"]]
    names = f" ({', '.join(drifted[:5])}{', ...' if len(drifted) > 5 else ''})" if drifted else ""
    verdict = "dataset drift" if dataset["detected"] else "no dataset drift"
    return (
        f"{verdict}: {dataset['driftedFeatures']}/{dataset['evaluatedFeatures']} features "
        f"drifted{names}; {window}"
    )


def build_drift_entry(
    deployment: str,
    observation: DriftObservation,
    previous: Mapping[str, Any] | None,
    now: datetime.datetime,
    policy: EpisodePolicy,
) -> tuple[dict[str, Any], list[Event]]:
    """The deployment's new `drift` status entry and the Events its change deserves."""
    previous = previous or {}
    episode = episode_from_status(previous.get("episode"))
    events: list[Event] = []
    merged = observation.merged
    if merged is not None:
        entry: dict[str, Any] = _evaluated_fields(merged)
        entry["reason"] = EVALUATED if merged.get("ready") else WINDOW_FILLING
        message = _message(merged, observation.replicas_reporting)
        verdict = _verdict(merged)
    else:
        reason, message = observation.problem or (NO_REPLICA, "no replica reported a summary")
        # Keep the last numbers (evaluatedAt shows their age) rather than pretend "no drift".
        kept = ("detected", "driftedFeatures", "evaluatedFeatures", "driftedRatio", "samples")
        entry = {k: previous[k] for k in (*kept, "windowSize", "topFeatures") if k in previous}
        if "evaluatedAt" in previous:
            entry["evaluatedAt"] = previous["evaluatedAt"]
        entry["reason"] = reason
        verdict = None
        if reason in ANNOUNCED and previous.get("reason") != reason:
            events.append(("Warning", reason, f"deployment {deployment}: {message}"))
    if observation.note:
        message = f"{message}; {observation.note}"
    message = bound_message(message)
    new_episode, transition = step_episode(episode, verdict, now, policy)
    if transition == "started":
        events.append(("Warning", CONDITION, f"deployment {deployment}: {message}"))
    elif transition == "ended":
        events.append(
            (
                "Normal",
                "DriftEnded",
                f"deployment {deployment}: no drift in {policy.clear_evaluations} evaluations "
                f"over {policy.cooldown_seconds:g}s; {message}",
            )
        )
    entry.update(
        message=message,
        replicasReporting=observation.replicas_reporting,
        replicasFailed=observation.replicas_failed,
        episode=episode_to_status(new_episode),
    )
    last = _last_episode(previous, transition, now)
    if last is not None:
        entry["lastEpisode"] = last
    observed = format_time(now)
    if observed is not None:
        entry["observedAt"] = observed
    built = DriftStatus.model_validate(entry).to_status()
    if "observedAt" in previous and same_status(_without_time(built), _without_time(previous)):
        # A poll that learnt nothing new writes nothing (1,000 idle endpoints, issue 15):
        # observedAt is the last poll that changed the entry.
        built["observedAt"] = previous["observedAt"]
    return built, events


def _without_time(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "observedAt"}


def _last_episode(
    previous: Mapping[str, Any], transition: str | None, now: datetime.datetime
) -> dict[str, Any] | None:
    """The finished episode to record: the one that just ended (its start copied verbatim, so
    the drift events' ids match), else the one recorded before."""
    started = (previous.get("episode") or {}).get("startedAt")
    if transition == "ended" and started:
        return {"startedAt": started, "endedAt": format_time(now, millis=True)}
    carried = previous.get("lastEpisode")
    return dict(carried) if isinstance(carried, Mapping) else None


def drift_condition(entries: Mapping[str, Mapping[str, Any]]) -> tuple[bool, str, str]:
    """(status, reason, message) of `DriftDetected` from the deployments' drift entries."""
    active = [n for n, e in entries.items() if (e.get("episode") or {}).get("active")]
    if active:
        return True, CONDITION, "; ".join(f"{n}: {entries[n].get('message', '')}" for n in active)
    for reason in (BASELINE_MISSING, BASELINE_UNREADABLE):
        hit = [n for n, e in entries.items() if e.get("reason") == reason]
        if hit:
            return False, reason, "; ".join(f"{n}: {entries[n].get('message', '')}" for n in hit)
    if not entries:
        return False, "NotMonitored", "no deployment has drift monitoring enabled"
    names = ", ".join(sorted(entries))
    return False, "NoDrift", f"no drift episode in {names}"
