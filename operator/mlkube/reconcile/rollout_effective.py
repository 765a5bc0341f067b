"""The spec the endpoint's children are built from while a rollout runs (pure).

docs/rollouts.md §2: the endpoint controller builds its children (router config, HTTPRoute,
Deployments) from the spec with the rollout's running split applied, so every existing path
(router config, Gateway API weights, applied-traffic verification, status.traffic) serves
rollouts unchanged. `running_split` says what runs; `effective_spec` folds it into a copy of
the spec (no validation: a running split is valid by construction, and e.g. a candidate at 0
replicas is not something a user writes).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.duration import parse_duration
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.pipeline_deploy import scaled_traffic

DEFAULT_SCALE_DOWN_DELAY: Final = datetime.timedelta(seconds=30)
RUNNING: Final = ("Progressing", "Paused")


@dataclass(frozen=True)
class RunningSplit:
    """What the routers serve now: live split, mirror, and replica overrides by deployment."""

    traffic: dict[str, int]
    mirror: dict[str, int]
    replicas: dict[str, int] = field(default_factory=dict)


def revision(spec: Mapping[str, Any]) -> str:
    """sha256 over what identifies a rollout (docs/rollouts.md §2)."""
    rollout = spec.get("rollout") or {}
    candidate = next(
        (d for d in spec.get("deployments") or [] if d.get("name") == rollout.get("candidate")),
        None,
    )
    doc = {
        "rollout": rollout,
        "traffic": spec.get("traffic") or {},
        "mirror": spec.get("mirror") or {},
        "candidate": candidate,
        "stable": rollout.get("stable"),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def initial_deploy(
    spec: Mapping[str, Any], status: Mapping[str, Any], now: str
) -> dict[str, Any] | None:
    """status.rollout for a first deploy (no split ever applied): the spec split applies at
    once, phase Promoted, reason InitialDeploy. Written with the first status, so no later
    pass can mistake the applied spec split for a running one to roll out from."""
    if not spec.get("rollout") or status.get("traffic") or status.get("rollout"):
        return None
    traffic = {k: int(v) for k, v in (spec.get("traffic") or {}).items()}
    return {
        "revision": revision(spec),
        "phase": "Promoted",
        "reason": "InitialDeploy",
        "message": "first deploy: the spec split applies at once",
        "startedAt": now,
        "finishedAt": now,
        "startTraffic": traffic,
        "weight": traffic.get(str(spec["rollout"].get("candidate")), 0),
        "mirror": 0,
    }


def start_traffic(applied: Mapping[str, int], candidate: str, stable: str) -> dict[str, int]:
    """The split running now with the candidate's weight given to the stable."""
    start = {k: int(v) for k, v in applied.items()}
    moved = start.pop(candidate, 0)
    start[stable] = start.get(stable, 0) + moved
    return start


def _parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def running_split(
    spec: Mapping[str, Any], status: Mapping[str, Any], now: datetime.datetime
) -> RunningSplit:
    """What runs, from the raw spec and status (docs/rollouts.md §2): the spec's split without
    a rollout, on a first deploy and once promoted; `startTraffic` before a new revision's
    first step and after an abort (candidate at 0 replicas past `abortScaleDownDelay`); the
    candidate at the step's weight (others scaled from startTraffic) or mirror while it runs."""
    traffic = {k: int(v) for k, v in (spec.get("traffic") or {}).items()}
    mirror = {k: int(v) for k, v in (spec.get("mirror") or {}).items() if int(v) > 0}
    rollout = spec.get("rollout")
    applied = status.get("traffic") or {}
    if not rollout or not applied:
        return RunningSplit(traffic, mirror)
    candidate, stable = str(rollout["candidate"]), str(rollout["stable"])
    state = status.get("rollout") or {}
    if state.get("revision") != revision(spec):
        # A new rollout that has not started yet: nothing of the new plan runs.
        return RunningSplit(start_traffic(applied, candidate, stable), {})
    start = {k: int(v) for k, v in (state.get("startTraffic") or applied).items()}
    phase = state.get("phase")
    if phase == "Promoted":
        return RunningSplit(traffic, mirror)
    if phase in RUNNING:
        weight, shadow = int(state.get("weight") or 0), int(state.get("mirror") or 0)
        live = scaled_traffic(start, candidate, weight) if weight else {**start, candidate: 0}
        return RunningSplit(live, {candidate: shadow} if shadow else {})
    if phase != "Aborted":
        return RunningSplit({**start, candidate: 0}, {})
    replicas: dict[str, int] = {}
    delay = rollout.get("abortScaleDownDelay")
    finished = _parse_time(state.get("finishedAt"))
    wait = parse_duration(delay) if delay else DEFAULT_SCALE_DOWN_DELAY
    if state.get("scaledDown") or (finished is not None and now >= finished + wait):
        replicas[candidate] = 0
    return RunningSplit({**start, candidate: 0}, {}, replicas)


def effective_spec(spec: OnlineEndpointSpec, split: RunningSplit) -> OnlineEndpointSpec:
    """`spec` with the running split and replica overrides (a 0-replica override drops the
    deployment's autoscaler, which would otherwise scale it straight back up)."""
    deployments = [
        dep.model_copy(update={"replicas": split.replicas[dep.name], "autoscale": None})
        if dep.name in split.replicas
        else dep
        for dep in spec.deployments
    ]
    live = {k: v for k, v in split.traffic.items() if v > 0 or k in spec.traffic}
    return spec.model_copy(
        update={
            "traffic": dict(sorted(live.items())),
            "mirror": {k: v for k, v in sorted(split.mirror.items()) if v > 0},
            "deployments": deployments,
        }
    )


def split_differs(spec: OnlineEndpointSpec, effective: OnlineEndpointSpec) -> bool:
    """The running split is not the spec's (the abort message says so)."""
    return _live(spec.traffic) != _live(effective.traffic) or _live(spec.mirror) != _live(
        effective.mirror
    )


def _live(split: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in split.items() if v > 0}


def wants_running(spec: OnlineEndpointSpec, effective: OnlineEndpointSpec) -> str:
    """The abort message's "spec wants {green: 100}, running {blue: 100}" (no zero weights)."""
    return f"spec wants {_braced(spec.traffic)}, running {_braced(effective.traffic)}" + (
        f" (mirror {_braced(effective.mirror)})" if _live(effective.mirror) else ""
    )


def _braced(split: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(_live(split).items())) + "}"
