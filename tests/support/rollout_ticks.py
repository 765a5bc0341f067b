"""Shared fixtures for the rollout unit tests: an endpoint spec with a rollout and a clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlkube.api.endpoint import OnlineEndpointSpec

T0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)

ERRORS = {
    "name": "errors", "interval": "10s", "count": 2, "successCondition": "result <= 0.01",
    "failureCondition": "result > 0.05", "provider": {"builtin": {"type": "errorRate"}},
}  # fmt: skip
LATENCY = {
    "name": "p99", "interval": "20s", "count": 1, "successCondition": "result <= 1.2",
    "provider": {"builtin": {"type": "latency", "quantile": 0.99, "compare": "ratio"}},
}  # fmt: skip

STEPS = [
    {"setWeight": 10},
    {"analysis": {"metrics": ["errors", "p99"]}},
    {"setMirror": 50},
    {"pause": {"duration": "2m"}},
    {"setWeight": 50},
    {"pause": {}},
]


def spec(**rollout: Any) -> OnlineEndpointSpec:
    """blue (stable, v3) → green (candidate, v4), target {green: 100}; `rollout` overrides."""
    traffic = rollout.pop("traffic", {"green": 100})
    mirror = rollout.pop("mirror", {})
    model = rollout.pop("model", "credit-risk-v4")
    extra = rollout.pop("deployments", [])
    body: dict[str, Any] = {
        "stable": "blue", "candidate": "green", "steps": STEPS, "abortScaleDownDelay": "10m",
        "metrics": [ERRORS, LATENCY],
    }  # fmt: skip
    body.update(rollout)
    return OnlineEndpointSpec.model_validate(
        {
            "deployments": [
                {"name": "blue", "model": "credit-risk-v3"},
                {"name": "green", "model": model},
                *extra,
            ],
            "traffic": traffic,
            "mirror": mirror,
            "rollout": body,
        }
    )


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)
