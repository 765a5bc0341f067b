"""The running split the endpoint's children are built from (docs/rollouts.md §2), between a
spec change and the rollout loop's first tick too, and the conditions a rollout adds (§4)."""

from __future__ import annotations

import datetime
from typing import Any

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_rollout_status import with_rollout_conditions
from mlkube.reconcile.conditions import get_condition, set_condition
from mlkube.reconcile.kstatus import with_stalled
from mlkube.reconcile.rollout_effective import (
    RunningSplit,
    effective_spec,
    initial_deploy,
    running_split,
    wants_running,
)
from mlkube.reconcile.rollout_plan import revision
from support.rollout_ticks import T0, spec

ISO = "2026-11-30T12:00:00Z"


def state(endpoint: OnlineEndpointSpec, **fields: Any) -> dict[str, Any]:
    return {"revision": revision(endpoint), "startTraffic": {"blue": 100}, **fields}


def test_without_a_rollout_or_before_any_split_the_spec_split_runs() -> None:
    endpoint = spec()
    plain = endpoint.model_copy(update={"rollout": None})
    assert running_split(plain, {"traffic": {"blue": 100}}, T0) == RunningSplit({"green": 100}, {})
    assert running_split(endpoint, {}, T0) == RunningSplit({"green": 100}, {})


def test_first_deploy_is_promoted_at_once_and_stays_so() -> None:
    endpoint = spec()
    first = initial_deploy(endpoint, {}, T0)
    assert first is not None and first["phase"] == "Promoted"
    assert first["reason"] == "InitialDeploy" and first["revision"] == revision(endpoint)
    # Once the applied split is in status, the promoted rollout keeps the spec split.
    status = {"traffic": {"green": 100}, "rollout": first}
    assert running_split(endpoint, status, T0) == RunningSplit({"green": 100}, {})
    assert initial_deploy(endpoint, status, T0) is None


def test_a_new_revision_runs_the_current_split_with_the_candidate_given_to_the_stable() -> None:
    status = {"traffic": {"blue": 70, "green": 30}, "rollout": {"revision": "sha256:old",
              "phase": "Promoted"}}  # fmt: skip
    assert running_split(spec(), status, T0).traffic == {"blue": 100, "green": 0}


def test_a_running_step_scales_the_start_traffic() -> None:
    endpoint = spec()
    status = {"traffic": {"blue": 100}, "rollout": state(endpoint, phase="Progressing", weight=10)}
    assert running_split(endpoint, status, T0).traffic == {"blue": 90, "green": 10}
    paused = state(endpoint, phase="Paused", weight=0, mirror=50)
    split = running_split(endpoint, {"traffic": {"blue": 100}, "rollout": paused}, T0)
    assert (split.traffic, split.mirror) == ({"blue": 100, "green": 0}, {"green": 50})


def test_an_abort_runs_the_start_traffic_and_scales_the_candidate_down_after_the_delay() -> None:
    endpoint = spec(abortScaleDownDelay="1m")
    finished = (T0 - datetime.timedelta(seconds=59)).strftime("%Y-%m-%dT%H:%M:%SZ")
    aborted = state(endpoint, phase="Aborted", weight=0, finishedAt=finished)
    status = {"traffic": {"blue": 90, "green": 10}, "rollout": aborted}
    assert running_split(endpoint, status, T0) == RunningSplit({"blue": 100, "green": 0}, {})
    later = running_split(endpoint, status, T0 + datetime.timedelta(seconds=1))
    assert later == RunningSplit({"blue": 100, "green": 0}, {}, {"green": 0})


def test_the_effective_spec_carries_the_split_and_drops_the_scaled_down_autoscaler() -> None:
    autoscaled = {"name": "green", "model": "credit-risk-v4",
                  "autoscale": {"maxReplicas": 3, "targetConcurrency": 4}}  # fmt: skip
    endpoint = spec()
    green = type(endpoint.deployments[1]).model_validate(autoscaled)
    endpoint = endpoint.model_copy(update={"deployments": [endpoint.deployments[0], green]})
    effective = effective_spec(endpoint, RunningSplit({"blue": 100, "green": 0}, {}, {"green": 0}))
    assert effective.traffic == {"blue": 100, "green": 0}
    green = next(d for d in effective.deployments if d.name == "green")
    assert (green.replicas, green.autoscale) == (0, None)
    assert next(d for d in effective.deployments if d.name == "blue").replicas is None
    assert wants_running(endpoint, effective) == "spec wants {green: 100}, running {blue: 100}"


def conditions_for(rollout: dict[str, Any], degraded: bool = False) -> list[dict[str, Any]]:
    endpoint = spec()
    effective = effective_spec(endpoint, RunningSplit({"blue": 100, "green": 0}, {}))
    base: list[dict[str, Any]] = []
    for type_, status in (("Ready", True), ("Progressing", False), ("Degraded", degraded)):
        base = set_condition(base, type_=type_, status=status, reason="X", message="",
                             generation=1, now=ISO)  # fmt: skip
    merged = with_rollout_conditions(base, endpoint, effective, rollout, True, 1, ISO)
    return with_stalled(merged, 1, ISO)


def test_a_running_rollout_is_reconciling_and_an_aborted_one_stalled() -> None:
    running = conditions_for({"phase": "Paused", "message": "step 2/3: paused"})
    reconciling = get_condition(running, "Reconciling") or {}
    assert (reconciling.get("status"), reconciling.get("reason")) == ("True", "RolloutPaused")
    assert (get_condition(running, "Ready") or {}).get("status") == "True"
    abort = {"metric": "errors", "value": 0.12, "condition": "result <= 0.01"}
    aborted = conditions_for({"phase": "Aborted", "abort": abort})
    stalled = get_condition(aborted, "Stalled") or {}
    assert (stalled.get("status"), stalled.get("reason")) == ("True", "RolloutAborted")
    assert stalled["message"] == (
        "rollout aborted: metric errors measured 0.12, condition result <= 0.01; "
        "spec wants {green: 100}, running {blue: 100}"
    )
    assert (get_condition(aborted, "Ready") or {}).get("status") == "True"


def test_workload_failures_win_over_a_running_rollout() -> None:
    failing = conditions_for({"phase": "Progressing"}, degraded=True)
    assert (get_condition(failing, "Progressing") or {}).get("reason") == "X"
