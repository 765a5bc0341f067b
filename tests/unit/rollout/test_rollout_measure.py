"""Provider results: drift from the endpoint status (candidate and stable for relative
metrics), the Prometheus and web answers, and the entry point's dispatch and errors."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.api.rollout import RolloutMetric
from mlkube.builders.operator_config import LOOPBACK_NETWORKS, OperatorConfig
from mlkube.controllers.rollout_providers import measure_metric
from mlkube.reconcile.rollout_measure import drift_measure
from mlkube.reconcile.rollout_remote import (
    JsonPathError,
    parse_json_path,
    prometheus_measure,
    web_measure,
)
from support.fake_kube import FakeKube

DEV = OperatorConfig(pod_networks=LOOPBACK_NETWORKS, allow_file_artifacts=True)
PROD = OperatorConfig(pod_networks=LOOPBACK_NETWORKS)


def _drift(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "model": "m", "drift": {"reason": "Evaluated", **fields}}


STATUS = {
    "deployments": [
        _drift("green", driftedRatio=0.4, samples=500, predictionDrifted=True),
        _drift("blue", driftedRatio=0.1, samples=800, predictionDrifted=False),
        {"name": "red", "model": "m", "drift": {"reason": "WindowFilling", "samples": 20}},
        _drift("grey", driftedRatio=0.0, samples=100),  # profile without a prediction column
    ]
}


def test_drift_from_status() -> None:
    raw = drift_measure(STATUS, "inputDrift", "green", "blue")
    assert (raw.candidate, raw.candidate_samples, raw.stable, raw.stable_samples) == (
        0.4, 500, 0.1, 800,
    )  # fmt: skip
    raw = drift_measure(STATUS, "predictionDrift", "green", "blue")
    assert (raw.candidate, raw.stable) == (1.0, 0.0)
    assert drift_measure(STATUS, "predictionDrift", "grey", None).candidate is None
    filling = drift_measure(STATUS, "inputDrift", "red", None)
    assert filling.candidate is None and "WindowFilling" in filling.message
    assert drift_measure(STATUS, "inputDrift", "nobody", None).candidate is None


def _prom(kind: str, result: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": kind, "result": result}}


def test_prometheus_answers() -> None:
    assert prometheus_measure(_prom("scalar", [1.0, "0.25"])).candidate == 0.25
    one = prometheus_measure(_prom("vector", [{"metric": {}, "value": [1.0, "3"]}]))
    assert (one.candidate, one.candidate_samples, one.error) == (3.0, 1, None)
    empty = prometheus_measure(_prom("vector", []))
    assert empty.candidate is None and empty.error is None
    nan = prometheus_measure(_prom("vector", [{"metric": {}, "value": [1.0, "NaN"]}]))
    assert nan.candidate is None and nan.error is None
    many = prometheus_measure(_prom("vector", [{"value": [1, "1"]}] * 3))
    assert many.error is not None and "3 series" in many.error
    inf = prometheus_measure(_prom("scalar", [1.0, "+Inf"]))
    assert inf.error is not None and "finite" in inf.error
    assert prometheus_measure(_prom("matrix", [])).error is not None
    failed = prometheus_measure({"status": "error", "errorType": "bad_data", "error": "parse"})
    assert failed.error is not None and "bad_data" in failed.error


def test_web_answers_and_json_path_subset() -> None:
    doc = {"data": {"result": [{"value": "0.5"}, 2]}, "odd key": {"x": 7}, "flag": True}
    assert web_measure(doc, "$.data.result[0].value").candidate == 0.5
    assert web_measure(doc, "$.data.result[1]").candidate == 2.0
    assert web_measure(doc, "$['odd key'].x").candidate == 7.0
    assert web_measure(5, "$").candidate == 5.0
    assert web_measure(doc, "$.data.result[5]").error is not None  # nothing there
    assert web_measure(doc, "$.flag").error is not None  # a boolean is not a number
    assert web_measure(doc, "$.data").error is not None
    assert web_measure({"v": None}, "$.v").candidate is None  # null: no data
    assert parse_json_path("$.a.b[0]") == ["a", "b", 0]
    for bad in ("a.b", "$..a", "$.a[*]", "$[?(@.x)]"):
        with pytest.raises(JsonPathError):
            parse_json_path(bad)


ENDPOINT = {
    "metadata": {"name": "credit", "namespace": "ns"},
    "spec": {"rollout": {"candidate": "green", "stable": "blue"}},
    "status": STATUS,
}


def _metric(provider: dict[str, Any]) -> dict[str, Any]:
    return {"name": "m", "provider": provider}


def test_entry_point_dispatches_and_never_raises() -> None:
    kube = FakeKube()
    raw, state = measure_metric(
        ENDPOINT, _metric({"builtin": {"type": "inputDrift", "compare": "ratio"}}), kube, DEV
    )
    assert (raw.candidate, raw.stable, state) == (0.4, 0.1, None)
    raw, _ = measure_metric(ENDPOINT, _metric({"builtin": {"type": "nope"}}), kube, DEV)
    assert raw.error is not None and "nope" in raw.error
    raw, _ = measure_metric(ENDPOINT, _metric({}), kube, DEV)
    assert raw.error is not None
    # no Ready router pod: an Error measurement, not an exception
    raw, state = measure_metric(ENDPOINT, _metric({"builtin": {"type": "errorRate"}}), kube, DEV)
    assert raw.error is not None and "no Ready router pod" in raw.error and state is None
    no_rollout = {**ENDPOINT, "spec": {}}
    raw, _ = measure_metric(no_rollout, _metric({"builtin": {"type": "inputDrift"}}), kube, DEV)
    assert raw.error is not None and "spec.rollout" in raw.error
    # a broken definition is an Error too
    raw, _ = measure_metric(ENDPOINT, {"provider": {"builtin": 5}}, kube, DEV)
    assert raw.error is not None


@pytest.mark.parametrize(
    ("provider", "config", "fragment"),
    [
        ({"web": {"url": "http://169.254.169.254/latest", "jsonPath": "$.a"}}, DEV, "link-local"),
        ({"web": {"url": "http://127.0.0.1:9/x", "jsonPath": "$.a"}}, PROD, "loopback"),
        ({"web": {"url": "ftp://example.com/x", "jsonPath": "$.a"}}, DEV, "http(s)"),
        ({"web": {"url": "http://prometheus:9090/x", "jsonPath": "$"}}, DEV, "single-label"),
        ({"prometheus": {"address": "http://[fe80::1]:9090", "query": "up"}}, DEV, "link-local"),
        ({"prometheus": {"address": "http://u:p@example.com", "query": "up"}}, DEV, "credential"),
    ],
)
def test_http_providers_keep_to_the_measurement_policy(
    provider: dict[str, Any], config: OperatorConfig, fragment: str
) -> None:
    raw, _ = measure_metric(ENDPOINT, _metric(provider), FakeKube(), config)
    assert raw.error is not None and fragment in raw.error, raw.error


def test_unreachable_web_provider_is_an_error_measurement() -> None:
    provider = {"web": {"url": "http://127.0.0.1:9/none", "jsonPath": "$.a", "timeout": "2s"}}
    raw, _ = measure_metric(ENDPOINT, _metric(provider), FakeKube(), DEV)
    assert raw.error is not None and raw.error.startswith("web: 127.0.0.1:9")


def test_entry_point_takes_the_api_model() -> None:
    metric = RolloutMetric.model_validate(
        {
            "name": "drift",
            "successCondition": "result < 0.5",
            "provider": {"builtin": {"type": "predictionDrift", "compare": "difference"}},
        }
    )
    raw, state = measure_metric(ENDPOINT, metric, FakeKube(), DEV)
    assert (raw.candidate, raw.stable, raw.candidate_samples, state) == (1.0, 0.0, 500, None)
    web = RolloutMetric.model_validate(
        {
            "name": "web",
            "successCondition": "result < 0.5",
            "provider": {"web": {"url": "http://127.0.0.1:9/x", "jsonPath": "$.a"}},
        }
    )
    raw, _ = measure_metric(ENDPOINT, web, FakeKube(), PROD)
    assert raw.error is not None and "loopback" in raw.error


@pytest.mark.parametrize(
    ("interval", "timeout", "used"),
    [("10s", "2s", 2.0), ("10s", "10m", 10.0), ("5m", "1h", 30.0), (None, None, 5.0)],
)
def test_provider_timeouts_stay_within_the_interval_and_30_seconds(
    monkeypatch: pytest.MonkeyPatch, interval: str | None, timeout: str | None, used: float
) -> None:
    """A tick measures holding the endpoint's lock: a hung server with `timeout: 1h` would
    stall the endpoint's reconcile, an abort request and every other metric for that long."""
    from mlkube.controllers import rollout_providers

    seen: list[float] = []
    monkeypatch.setattr(rollout_providers, "web_get", lambda *a: seen.append(a[3]) or None)
    monkeypatch.setattr(rollout_providers, "prometheus_query", lambda *a: seen.append(a[3]))
    web: dict[str, Any] = {"url": "http://web.example.com/x"}
    prom: dict[str, Any] = {"address": "http://prom.example.com", "query": "up"}
    if timeout is not None:
        web["timeout"] = prom["timeout"] = timeout
    for provider in ({"web": web}, {"prometheus": prom}):
        metric = _metric(provider) | ({"interval": interval} if interval else {})
        measure_metric(ENDPOINT, metric, FakeKube(), DEV)
    assert seen == [used, used]
