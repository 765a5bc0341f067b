"""Rollout test data shared by the API, CLI and controller tests: the docs/rollouts.md §1
example as an OnlineEndpoint spec, and a status.rollout as the operator would write it (§4)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from mlkube.api import endpoint as ep
from mlkube.api import rollout as ro
from mlkube.contract import API_VERSION

Obj = dict[str, Any]

_ROLLOUT: Obj = {
    "stable": "blue",
    "candidate": "green",
    "steps": [
        {"setWeight": 10},
        {"analysis": {"metrics": ["errors", "p99"]}},
        {"setMirror": 50},
        {"pause": {"duration": "2m"}},
        {"setWeight": 50},
        {"analysis": {"metrics": ["errors"]}},
    ],
    "backgroundAnalysis": {"metrics": ["errors"], "startingStep": 1},
    "abortScaleDownDelay": "10m",
    "metrics": [
        {
            "name": "errors",
            "interval": "10s",
            "count": 3,
            "successCondition": "result <= 0.01",
            "failureCondition": "result > 0.05",
            "noDataPolicy": "Inconclusive",
            "minSampleCount": 50,
            "provider": {"builtin": {"type": "errorRate"}},
        },
        {
            "name": "p99",
            "successCondition": "result <= 1.2",
            "provider": {"builtin": {"type": "latency", "quantile": 0.99, "compare": "ratio"}},
        },
        {
            "name": "agree",
            "successCondition": "result >= 0.98",
            "provider": {"builtin": {"type": "agreement"}},
        },
        {
            "name": "prom",
            "successCondition": "result < 1",
            "provider": {"prometheus": {"address": "http://127.0.0.1:9090", "query": "up"}},
        },
        {
            "name": "web",
            "successCondition": "result < 1",
            "provider": {"web": {"url": "http://127.0.0.1:8000/v", "jsonPath": "$.data[0].v"}},
        },
    ],
}


def rollout_spec() -> Obj:
    """spec.rollout of the §1 example (blue stable, green candidate, six steps)."""
    return copy.deepcopy(_ROLLOUT)


def endpoint_spec(**overrides: Any) -> Obj:
    """An OnlineEndpoint spec with two deployments, target split {green: 100} and the rollout."""
    spec: Obj = {
        "deployments": [
            {"name": "blue", "model": "credit-risk-v3"},
            {"name": "green", "model": "credit-risk-v4"},
        ],
        "traffic": {"green": 100},
        "rollout": rollout_spec(),
    }
    spec.update(overrides)
    return spec


def endpoint(name: str, namespace: str, **overrides: Any) -> Obj:
    """A whole OnlineEndpoint object with `endpoint_spec`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "OnlineEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": endpoint_spec(**overrides),
    }


def rollout_status(**overrides: Any) -> Obj:
    """status.rollout of a rollout at step 2/6 (analysis), with measured metrics."""
    status: Obj = {
        "revision": "sha256:" + "ab" * 32,
        "phase": "Progressing",
        "reason": "StepAnalysis",
        "message": "step 2/6: analysis errors 2/3 measurements",
        "stepIndex": 1,
        "steps": 6,
        "stepStartedAt": "2026-11-30T12:00:10Z",
        "startedAt": "2026-11-30T12:00:00Z",
        "startTraffic": {"blue": 100},
        "weight": 10,
        "mirror": 0,
        "metrics": [
            {
                "name": "errors",
                "phase": "Running",
                "condition": "result <= 0.01",
                "failureCondition": "result > 0.05",
                "count": 2,
                "successful": 2,
                "nextMeasurementAt": "2026-11-30T12:00:40Z",
                "measurements": [
                    {"at": "2026-11-30T12:00:20Z", "phase": "Successful", "value": 0.004,
                     "candidate": 0.004, "samples": 812},
                    {"at": "2026-11-30T12:00:30Z", "phase": "Successful", "value": 0.002,
                     "candidate": 0.002, "samples": 790},
                ],
            },
            {
                "name": "p99",
                "phase": "Running",
                "condition": "result <= 1.2",
                "count": 1,
                "inconclusive": 0,
                "noData": 1,
                "measurements": [
                    {"at": "2026-11-30T12:00:20Z", "phase": "NoData", "samples": 12,
                     "message": "12 samples < minSampleCount 50"},
                ],
            },
            {
                "name": "errors",
                "background": True,
                "phase": "Running",
                "condition": "result <= 0.01",
                "count": 1,
                "successful": 1,
                "measurements": [
                    {"at": "2026-11-30T12:00:20Z", "phase": "Successful", "value": 0.004,
                     "samples": 812},
                ],
            },
        ],
    }  # fmt: skip
    status.update(overrides)
    return status


def aborted_status(**overrides: Any) -> Obj:
    """status.rollout of a rollout aborted by the errors metric."""
    message = (
        "rollout aborted: metric errors measured 0.12, condition result <= 0.01 (failureLimit 0);"
        " spec wants {green: 100}, running {blue: 100}"
    )
    status = rollout_status(
        phase="Aborted",
        reason="AnalysisFailed",
        message=message,
        weight=0,
        finishedAt="2026-11-30T12:00:41Z",
        abort={"metric": "errors", "value": 0.12, "condition": "result <= 0.01",
               "message": message},
    )  # fmt: skip
    status["metrics"][0].update(phase="Failed", count=3, failed=1)
    status["metrics"][0]["measurements"].append(
        {"at": "2026-11-30T12:00:40Z", "phase": "Failed", "value": 0.12, "samples": 800}
    )
    status.update(overrides)
    return status


def with_rollout(change: Callable[[Obj], Any]) -> Obj:
    """endpoint_spec() with `change` applied to its rollout."""
    spec = endpoint_spec()
    change(spec["rollout"])
    return spec


def metric(name: str, **fields: Any) -> Callable[[Obj], Any]:
    """A change for with_rollout: update the metric called `name` with `fields`."""

    def apply(rollout: Obj) -> None:
        next(m for m in rollout["metrics"] if m["name"] == name).update(fields)

    return apply


def builtin(name: str, **fields: Any) -> Callable[[Obj], Any]:
    """A change for with_rollout: update a builtin provider (a None value removes the key)."""

    def apply(rollout: Obj) -> None:
        found = next(m for m in rollout["metrics"] if m["name"] == name)
        found["provider"]["builtin"].update(fields)
        for key in [k for k, v in fields.items() if v is None]:
            found["provider"]["builtin"].pop(key)

    return apply


# Each §1 rule, broken once (the message the CEL rule carries too).
BROKEN: list[tuple[Obj, str]] = [
    (with_rollout(lambda r: r.update(stable="red")), ep.MSG_ROLLOUT_STABLE),
    (with_rollout(lambda r: r.update(candidate="red")), ep.MSG_ROLLOUT_CANDIDATE),
    (with_rollout(lambda r: r.update(candidate="blue")), ro.MSG_STABLE_IS_CANDIDATE),
    (endpoint_spec(traffic={"blue": 100}), ep.MSG_ROLLOUT_CANDIDATE_WEIGHT),
    (endpoint_spec(traffic={"blue": 100, "green": 0}), ep.MSG_ROLLOUT_CANDIDATE_WEIGHT),
    (with_rollout(lambda r: r["steps"].append({"setWeight": 5, "setMirror": 5})), ro.MSG_STEP_ONE),
    (with_rollout(lambda r: r["steps"].append({})), ro.MSG_STEP_ONE),
    (with_rollout(lambda r: r["steps"].append({"analysis": {"metrics": ["ghost"]}})),
     ro.MSG_ANALYSIS_METRICS),
    (with_rollout(lambda r: r["backgroundAnalysis"].update(metrics=["ghost"])),
     ro.MSG_BACKGROUND_METRICS),
    (with_rollout(lambda r: r["metrics"].append({**r["metrics"][0]})), ro.MSG_METRIC_NAMES_UNIQUE),
    (with_rollout(builtin("p99", quantile=None)), ro.MSG_QUANTILE),
    (with_rollout(builtin("errors", quantile=0.5)), ro.MSG_QUANTILE),
    (with_rollout(builtin("agree", compare="ratio")), ro.MSG_AGREEMENT_COMPARE),
    (with_rollout(builtin("agree", compare="difference")), ro.MSG_AGREEMENT_COMPARE),
    (with_rollout(metric("errors", failureLimit=-1)), ro.MSG_LIMITS),
    (with_rollout(metric("errors", inconclusiveLimit=-2)), ro.MSG_LIMITS),
    (with_rollout(lambda r: r["backgroundAnalysis"].update(startingStep=6)), ro.MSG_STARTING_STEP),
    (with_rollout(metric("errors", provider={})), ro.MSG_PROVIDER_ONE),
    (with_rollout(metric("errors", provider={"builtin": {"type": "errorRate"},
                                          "web": {"url": "http://x/"}})), ro.MSG_PROVIDER_ONE),
    (with_rollout(metric("errors", interval="500ms")), ro.MSG_INTERVAL),
    (with_rollout(metric("errors", interval="0s")), ro.MSG_INTERVAL),
    (with_rollout(metric("errors", interval="0m0s")), ro.MSG_INTERVAL),
    # No router to measure errorRate/latency/agreement behind a Gateway.
    ({**endpoint_spec(trafficBackend="gateway-api"), "mirror": {}}, ep.MSG_ROLLOUT_ROUTER_METRICS),
]  # fmt: skip
