"""The spec the endpoint's children are built from while a rollout runs (pure).

docs/rollouts.md §2: the endpoint controller builds its children (router config, HTTPRoute,
Deployments) from the spec with the rollout's running split applied, so every existing path
(router config, Gateway API weights, applied-traffic verification, status.traffic) serves
rollouts unchanged. `reconcile.rollout_split.running_split` says what a rollout runs; this
module adds what the endpoint controller sees between a spec change and the rollout loop's
first tick of the new revision (status.rollout still of the old one): the new rollout has not
started, so nothing of its plan runs — the split running now with the candidate's weight given
to the stable (its `startTraffic`), or the spec split on a first deploy. `effective_spec`
folds the split into a copy of the spec (no validation: a running split is valid by
construction, and e.g. a candidate at 0 replicas is not something a user writes).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.api.rollout_status import RolloutStatus
from mlkube.reconcile.rollout_plan import Observations, advance, revision
from mlkube.reconcile.rollout_split import RunningSplit, start_traffic
from mlkube.reconcile.rollout_split import running_split as split_of_rollout

__all__ = ["RunningSplit", "effective_spec", "initial_deploy", "read_rollout", "running_split"]


def read_rollout(status: Mapping[str, Any]) -> RolloutStatus | None:
    """status.rollout, None when absent or unreadable (the plan then starts afresh)."""
    try:
        raw = status.get("rollout")
        return RolloutStatus.model_validate(raw) if raw else None
    except ValidationError:
        return None


def is_current(spec: OnlineEndpointSpec, rollout: RolloutStatus | None) -> bool:
    """status.rollout is of the spec's revision."""
    return spec.rollout is not None and rollout is not None and rollout.revision == revision(spec)


def running_split(
    spec: OnlineEndpointSpec, status: Mapping[str, Any], now: datetime.datetime
) -> RunningSplit:
    """What runs, from the spec and the raw status (see the module docstring)."""
    if spec.rollout is None:
        return RunningSplit(dict(spec.traffic), dict(spec.mirror))
    rollout = read_rollout(status)
    applied = {str(k): int(v) for k, v in (status.get("traffic") or {}).items()}
    if not is_current(spec, rollout):
        if not applied:  # a first deploy: the spec split applies at once
            return RunningSplit(dict(spec.traffic), dict(spec.mirror))
        waiting = RolloutStatus(
            revision=revision(spec), phase="Progressing", start_traffic=start_traffic(spec, applied)
        )
        return split_of_rollout(spec, waiting, now)
    return split_of_rollout(spec, rollout, now)


def initial_deploy(
    spec: OnlineEndpointSpec, status: Mapping[str, Any], now: datetime.datetime
) -> dict[str, Any] | None:
    """status.rollout of a first deploy (no split ever applied, no rollout status): Promoted,
    reason InitialDeploy. The endpoint controller writes it with its first status, so no later
    pass can take the applied spec split for a running one to roll out from."""
    if spec.rollout is None or status.get("traffic") or status.get("rollout"):
        return None
    first = advance(spec, None, Observations(), now).rollout
    return (
        None if first is None else first.model_dump(mode="json", by_alias=True, exclude_none=True)
    )


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


def _live(split: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in split.items() if v > 0}


def wants_running(spec: OnlineEndpointSpec, effective: OnlineEndpointSpec) -> str:
    """The abort message's "spec wants {green: 100}, running {blue: 100}" (no zero weights)."""
    return f"spec wants {_braced(spec.traffic)}, running {_braced(effective.traffic)}" + (
        f" (mirror {_braced(effective.mirror)})" if _live(effective.mirror) else ""
    )


def _braced(split: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(_live(split).items())) + "}"
