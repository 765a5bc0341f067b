"""Endpoint status: Deployment health, Ready/Progressing/Degraded, applied traffic."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_status import (
    Blocker,
    WorkloadHealth,
    build_endpoint_status,
    is_blocked,
    workload_health,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def deployment(
    want: int = 2,
    *,
    generation: int = 1,
    observed: int = 1,
    updated: int | None = None,
    available: int | None = None,
    total: int | None = None,
    ready: int | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    have = want if available is None else available
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": want},
        "status": {
            "observedGeneration": observed,
            "replicas": want if total is None else total,
            "updatedReplicas": want if updated is None else updated,
            "availableReplicas": have,
            "readyReplicas": have if ready is None else ready,
            "conditions": conditions
            if conditions is not None
            else [{"type": "Available", "status": "True" if have >= want else "False"}],
        },
    }


@pytest.mark.parametrize(
    ("obj", "available", "failure"),
    [
        (deployment(), True, None),
        (deployment(available=1), False, None),
        (deployment(observed=0, generation=1), False, None),  # controller has not seen it yet
        (deployment(updated=1, total=3), False, None),  # old pods still serving
        (deployment(0, conditions=[]), True, None),
        (
            deployment(
                available=0,
                conditions=[
                    {
                        "type": "ReplicaFailure",
                        "status": "True",
                        "message": 'pods "x" is forbidden: violates PodSecurity',
                    }
                ],
            ),
            False,
            'pods "x" is forbidden: violates PodSecurity',
        ),
        (
            deployment(
                available=1,
                conditions=[
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": "ReplicaSet has timed out progressing.",
                    }
                ],
            ),
            False,
            "ReplicaSet has timed out progressing.",
        ),
    ],
)
def test_workload_health(obj: dict[str, Any], available: bool, failure: str | None) -> None:
    health = workload_health(obj)
    assert health is not None
    assert health.available is available
    assert health.failure == failure
    assert workload_health(None) is None


def _status(spec: OnlineEndpointSpec, **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "spec": spec,
        "generation": 3,
        "url": "http://credit.ml.svc.cluster.local",
        "applied_traffic": spec.traffic,
        "applied_mirror": spec.mirror,
        "deployments": {},
        "router": None,
        "needs_router": True,
        "blockers": [],
        "previous": None,
        "now": T0,
    }
    args.update(kwargs)
    return build_endpoint_status(**args)


def _conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


UP = WorkloadHealth(replicas=2, ready=2, available=True)


def test_ready_when_every_deployment_and_the_router_are_available(
    spec: OnlineEndpointSpec,
) -> None:
    status = _status(spec, deployments={"blue": UP, "green": UP}, router=UP)
    assert _conds(status) == {
        "Ready": ("True", "Available"),
        "Progressing": ("False", "Complete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["url"] == "http://credit.ml.svc.cluster.local"
    assert status["traffic"] == {"blue": 70, "green": 30}
    assert status["observedGeneration"] == 3
    # readyAt: when each became available with its Model (the deployment.ready CloudEvent).
    assert status["deployments"] == [
        {"name": "blue", "model": "credit-risk-v3", "readyReplicas": 2, "replicas": 2,
         "readyAt": T0},
        {"name": "green", "model": "credit-risk-v4", "readyReplicas": 2, "replicas": 2,
         "readyAt": T0},
    ]  # fmt: skip
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_not_ready_while_the_router_or_a_deployment_is_missing(
    spec: OnlineEndpointSpec,
) -> None:
    halfway = WorkloadHealth(replicas=2, ready=1, available=False)
    status = _status(spec, deployments={"blue": UP, "green": halfway}, router=None)
    assert _conds(status)["Ready"] == ("False", "Progressing")
    assert _conds(status)["Progressing"] == ("True", "RollingOut")
    assert status["message"] == "waiting for green (1/2 ready), router (not created)"
    assert status["deployments"][1]["readyReplicas"] == 1
    # The gateway backend has no router to wait for.
    gw = _status(spec, deployments={"blue": UP, "green": UP}, needs_router=False)
    assert _conds(gw)["Ready"] == ("True", "Available")


def test_failed_rollout_is_degraded(spec: OnlineEndpointSpec) -> None:
    broken = WorkloadHealth(replicas=2, ready=0, available=False, failure="forbidden: PodSecurity")
    status = _status(spec, deployments={"blue": UP, "green": broken}, router=UP)
    assert _conds(status) == {
        "Ready": ("False", "RolloutFailed"),
        "Progressing": ("False", "RolloutFailed"),
        "Degraded": ("True", "RolloutFailed"),
    }
    assert "green: forbidden: PodSecurity" in status["message"]


def test_waiting_for_models_is_progressing_not_degraded(spec: OnlineEndpointSpec) -> None:
    blocker = Blocker("ModelNotReady", "Model credit-risk-v4 is not Ready yet (Verifying)")
    status = _status(spec, blockers=[blocker], applied_traffic={}, applied_mirror={})
    assert _conds(status) == {
        "Ready": ("False", "ModelNotReady"),
        "Progressing": ("True", "ModelNotReady"),
        "Degraded": ("False", "AsExpected"),
    }
    assert status["traffic"] == {}  # nothing applied yet
    assert is_blocked(status)
    failed = Blocker("ModelFailed", "Model credit-risk-v4 failed: digest mismatch", degraded=True)
    status = _status(spec, blockers=[blocker, failed])
    assert _conds(status)["Degraded"] == ("True", "ModelFailed")
    assert _conds(status)["Progressing"][0] == "False"
    assert "digest mismatch" in status["message"]


def test_transition_time_moves_only_when_the_status_flips(spec: OnlineEndpointSpec) -> None:
    waiting = WorkloadHealth(replicas=2, ready=0, available=False)
    first = _status(spec, deployments={"blue": waiting, "green": waiting}, router=UP)
    still = _status(
        spec, deployments={"blue": waiting, "green": UP}, router=UP, previous=first, now=T1
    )
    ready = _status(spec, deployments={"blue": UP, "green": UP}, router=UP, previous=still, now=T1)

    def when(status: dict[str, Any], type_: str) -> str:
        return str(
            next(c for c in status["conditions"] if c["type"] == type_)["lastTransitionTime"]
        )

    assert when(still, "Ready") == T0
    assert when(ready, "Ready") == T1
    assert when(ready, "Degraded") == T0
    assert not is_blocked(ready)


def test_failing_pods_degrade_the_endpoint_with_their_reason(spec: OnlineEndpointSpec) -> None:
    from mlkube.builders.pod_problems import PodProblem

    why = "init container storage-initializer CrashLoopBackOff (exited 3: digest mismatch)"
    failing = WorkloadHealth(replicas=2, ready=0, available=False, pods=PodProblem(why, True))
    status = _status(spec, deployments={"blue": UP, "green": failing}, router=UP)
    assert _conds(status) == {
        "Ready": ("False", "PodsFailing"),
        "Progressing": ("False", "PodsFailing"),
        "Degraded": ("True", "PodsFailing"),
    }
    assert status["message"] == f"green: {why}"
    assert status["deployments"][1]["message"] == why
    assert "message" not in status["deployments"][0]
    # A reason to wait is shown but is not a failure.
    pending = WorkloadHealth(
        replicas=2, ready=0, available=False, pods=PodProblem("pod not scheduled: no nodes", False)
    )
    status = _status(spec, deployments={"blue": UP, "green": pending}, router=UP)
    assert _conds(status)["Ready"] == ("False", "Progressing")
    assert status["message"] == "waiting for green (0/2 ready: pod not scheduled: no nodes)"
    # Once available, a stale pod problem is not shown.
    healed = WorkloadHealth(replicas=2, ready=2, available=True, pods=PodProblem(why, True))
    status = _status(spec, deployments={"blue": UP, "green": healed}, router=UP)
    assert _conds(status)["Ready"] == ("True", "Available")
    assert "message" not in status["deployments"][1]
