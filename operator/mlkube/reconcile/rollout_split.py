"""The split an endpoint runs during a rollout: one pure function of spec, status.rollout, now.

docs/rollouts.md §2: the endpoint controller builds its children (router config, HTTPRoute,
Deployments) from the spec with this split applied, so every existing path serves rollouts
unchanged. While a rollout runs, the candidate has its step's live weight (the other
deployments of `startTraffic` scaled around it with the pipeline canary's rounding: integers
summing to exactly 100) or its step's mirror share, never both; promoted, the spec's split
runs; aborted, `startTraffic` runs with no mirror on the candidate, and after
`abortScaleDownDelay` the candidate runs 0 replicas (its Deployment stays: a retry is quick).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlkube.api.duration import parse_duration
from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.rollout_status import RolloutStatus
from mlkube.reconcile.drift_episodes import parse_time
from mlkube.reconcile.traffic_shares import scaled_traffic


@dataclass(frozen=True)
class RunningSplit:
    """Live traffic (sums to 100 when not empty), mirror shares, and replica overrides (a
    deployment name → replicas that replace the spec's scale)."""

    traffic: dict[str, int]
    mirror: dict[str, int]
    replicas: dict[str, int] = field(default_factory=dict)


def start_traffic(spec: OnlineEndpointSpec, applied: Mapping[str, int]) -> dict[str, int]:
    """A new rollout's starting split: the split running now with the candidate's weight (and
    that of deployments no longer in spec) given to the stable; a split with no live weight
    left sends everything to the stable."""
    rollout = spec.rollout
    assert rollout is not None
    names = {d.name for d in spec.deployments}
    start = {k: int(v) for k, v in applied.items() if k in names and k != rollout.candidate}
    moved = 100 - sum(start.values())
    start[rollout.stable] = start.get(rollout.stable, 0) + max(moved, 0)
    if sum(start.values()) != 100:  # a damaged status.traffic (over 100): start from the stable
        start = {rollout.stable: 100}
    return {k: v for k, v in start.items() if v > 0} or {rollout.stable: 100}


def _other_mirrors(
    spec: OnlineEndpointSpec, candidate: str, traffic: Mapping[str, int]
) -> dict[str, int]:
    """The spec's mirrors of deployments other than the candidate that take no live traffic in
    `traffic` (a deployment never gets live and mirrored traffic at once)."""
    return {
        k: int(v) for k, v in spec.mirror.items()
        if k != candidate and v > 0 and traffic.get(k, 0) == 0
    }  # fmt: skip


def scale_down_at(spec: OnlineEndpointSpec, rollout: RolloutStatus) -> dt.datetime | None:
    """When an aborted rollout's candidate goes to 0 replicas (None: not aborted, or no time)."""
    if rollout.phase != "Aborted" or spec.rollout is None:
        return None
    finished = parse_time(rollout.finished_at)
    if finished is None:
        return None
    return finished + parse_duration(spec.rollout.abort_scale_down_delay)


def running_split(
    spec: OnlineEndpointSpec, rollout: RolloutStatus | None, now: dt.datetime
) -> RunningSplit:
    """The split to serve now (see the module docstring)."""
    plan = spec.rollout
    if plan is None or rollout is None or rollout.phase == "Promoted":
        return RunningSplit(dict(spec.traffic), dict(spec.mirror))
    names = {d.name for d in spec.deployments}
    candidate = plan.candidate
    start = {k: v for k, v in rollout.start_traffic.items() if k in names} or {plan.stable: 100}
    if rollout.phase == "Aborted":
        traffic = scaled_traffic(start, candidate, 0)
        at = scale_down_at(spec, rollout)
        down = rollout.scaled_down or (at is not None and now >= at)
        replicas = {candidate: 0} if down else {}
        return RunningSplit(traffic, _other_mirrors(spec, candidate, traffic), replicas)
    weight = min(max(rollout.weight, 0), 100)
    traffic = scaled_traffic(start, candidate, weight)
    mirror = _other_mirrors(spec, candidate, traffic)
    if traffic.get(candidate, 0) == 0 and rollout.mirror > 0:
        mirror[candidate] = min(rollout.mirror, 100)
    return RunningSplit(traffic, mirror)
