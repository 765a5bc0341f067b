"""Take one measurement of a rollout metric: the one entry point the rollout loop calls.

`measure_metric(endpoint, metric, kube, config, state)` -> `(RawMeasurement, new state)`.
It never raises: a provider failure is `RawMeasurement.error`. The state is explicit: the
loop keeps it per (endpoint, metric) between ticks and passes it back (None at the start of
an analysis, or after an operator restart). Only the router metrics have one (the previous
scrape); with no usable state the call takes the baseline and returns
`RawMeasurement(baseline=True)`, which is not a measurement: measure again after `interval`.

Router metrics are scraped from every Ready router replica of the endpoint (its `metrics`
container port, 8082 by default) through `pod_http`, which keeps to the operator's pod
networks; the drift metrics read the endpoint's own status (the drift poll writes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.api.duration import parse_duration
from mlkube.api.rollout import RolloutMetric
from mlkube.builders.names import COMPONENT_ROUTER, pod_selector, selector_string
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import ROUTER_METRICS_PORT
from mlkube.controllers.kube import Kube
from mlkube.controllers.pod_http import get_from_pods, ready_pod_ips
from mlkube.controllers.rollout_http import DEFAULT_TIMEOUT, prometheus_query, web_get
from mlkube.reconcile.rollout_measure import (
    DRIFT_TYPES,
    ROUTER_TYPES,
    RawMeasurement,
    RouterWindowState,
    drift_measure,
    provider_error,
    window_measure,
)
from mlkube.reconcile.router_counters import Counters, MetricsFormatError, parse_counters

MAX_METRICS_BYTES: Final = 4 * 1024 * 1024
# A tick measures holding the endpoint's lock: a provider waits at most this long, and never
# longer than the metric's interval (a hung server must not stall the endpoint's reconcile,
# an abort request and the other metrics for a user-chosen `timeout: 1h`).
MAX_PROVIDER_TIMEOUT: Final = 30.0
METRICS_PATH: Final = "/metrics"
ProviderState = RouterWindowState  # the only provider with state: the router scrape

__all__ = ["ProviderState", "RawMeasurement", "measure_metric", "scrape_routers"]


def _fields(metric: RolloutMetric | Mapping[str, Any]) -> dict[str, Any]:
    """The metric definition as the spec spells it (an API model or the spec's mapping)."""
    if isinstance(metric, RolloutMetric):
        return metric.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dict(metric) if isinstance(metric, Mapping) else {}


def _seconds(value: Any, default: float = DEFAULT_TIMEOUT) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str) and value:
        try:
            return parse_duration(value).total_seconds()
        except ValueError:
            return default
    return default


def _timeout(value: Any, interval: Any) -> float:
    """The provider's timeout, capped by MAX_PROVIDER_TIMEOUT and the metric's interval."""
    return min(_seconds(value), MAX_PROVIDER_TIMEOUT, _seconds(interval, MAX_PROVIDER_TIMEOUT))


def _metrics_port(pod: Mapping[str, Any]) -> int:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == "metrics" and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return ROUTER_METRICS_PORT


def scrape_routers(
    kube: Kube,
    namespace: str,
    endpoint: str,
    deployments: tuple[str, ...],
    config: OperatorConfig,
) -> tuple[RouterWindowState, int, list[str]]:
    """(counters of every Ready router pod that answered, Ready pods, errors)."""
    selector = selector_string(pod_selector(endpoint, COMPONENT_ROUTER))
    targets: dict[int, list[tuple[str, str]]] = {}  # port -> [(pod key, ip)]
    ready = 0
    for pod in kube.list("v1", "Pod", namespace, label_selector=selector):
        ips = ready_pod_ips([pod])
        if not ips:
            continue
        ready += 1
        meta = pod.get("metadata") or {}
        key = str(meta.get("uid") or meta.get("name"))
        targets.setdefault(_metrics_port(pod), []).append((key, ips[0]))
    pods: dict[str, Counters] = {}
    errors: list[str] = []
    for port, members in sorted(targets.items()):
        replies = get_from_pods(
            [ip for _, ip in members], port, METRICS_PATH, config=config,
            timeout=config.drift_poll_timeout, max_bytes=MAX_METRICS_BYTES,
            what="the router metrics",
        )  # fmt: skip
        for (key, _), reply in zip(members, replies, strict=True):
            if not reply.ok:
                errors.append(reply.error or f"{reply.host}:{port}: HTTP {reply.status}")
                continue
            try:
                pods[key] = parse_counters(reply.body.decode("utf-8", "replace"), deployments)
            except MetricsFormatError as err:
                errors.append(f"{reply.host}:{port}: {err}"[:300])
    return RouterWindowState(deployments, pods), ready, errors


def _router_measure(
    endpoint: Mapping[str, Any],
    fields: Mapping[str, Any],
    kind: str,
    kube: Kube,
    config: OperatorConfig,
    state: RouterWindowState | None,
) -> tuple[RawMeasurement, RouterWindowState | None]:
    meta = endpoint.get("metadata") or {}
    candidate, stable = _pair(endpoint, fields, kind)
    deployments = (candidate,) if stable is None else (candidate, stable)
    current, ready, errors = scrape_routers(
        kube, str(meta.get("namespace")), str(meta.get("name")), deployments, config
    )
    if not current.pods:
        why = f"no Ready router pod answered ({ready} Ready)"
        return provider_error(f"{why}: {errors[0]}" if errors else why), state
    quantile = fields.get("quantile")
    raw = window_measure(
        kind, candidate, stable, state, current,
        float(quantile) if isinstance(quantile, int | float) else None,
    )  # fmt: skip
    if errors:
        note = f"{len(errors)} of {ready} router pods not scraped ({errors[0]})"
        raw = RawMeasurement(**{**raw.__dict__, "message": f"{raw.message}; {note}"})
    return raw, current


def _pair(
    endpoint: Mapping[str, Any], builtin: Mapping[str, Any], kind: str
) -> tuple[str, str | None]:
    rollout = (endpoint.get("spec") or {}).get("rollout") or {}
    relative = builtin.get("compare", "absolute") != "absolute" and kind != "agreement"
    return str(rollout.get("candidate")), (str(rollout.get("stable")) if relative else None)


def measure_metric(
    endpoint: Mapping[str, Any],
    metric: RolloutMetric | Mapping[str, Any],
    kube: Kube,
    config: OperatorConfig,
    state: ProviderState | None = None,
) -> tuple[RawMeasurement, ProviderState | None]:
    """One measurement of `metric` (an item of spec.rollout.metrics: API model or mapping) of
    the OnlineEndpoint object `endpoint` (as read now: spec.rollout names candidate and
    stable, status holds drift), and the state to pass to the next call of this metric."""
    try:
        rollout = (endpoint.get("spec") or {}).get("rollout") or {}
        if not rollout.get("candidate"):
            return provider_error("the endpoint has no spec.rollout.candidate"), state
        fields = _fields(metric)
        provider = fields.get("provider") or {}
        if "builtin" in provider:
            builtin = provider["builtin"] or {}
            kind = str(builtin.get("type"))
            if kind in ROUTER_TYPES:
                return _router_measure(endpoint, builtin, kind, kube, config, state)
            if kind in DRIFT_TYPES:
                candidate, stable = _pair(endpoint, builtin, kind)
                return drift_measure(endpoint.get("status") or {}, kind, candidate, stable), None
            return provider_error(f"unknown builtin metric type {kind!r}"), None
        if "prometheus" in provider:
            prom = provider["prometheus"] or {}
            timeout = _timeout(prom.get("timeout"), fields.get("interval"))
            query = prometheus_query(
                str(prom.get("address")), str(prom.get("query")), config, timeout
            )
            return query, None
        if "web" in provider:
            web = provider["web"] or {}
            timeout = _timeout(web.get("timeout"), fields.get("interval"))
            return web_get(str(web.get("url")), str(web.get("jsonPath")), config, timeout), None
        return provider_error("the metric names no provider (builtin, prometheus or web)"), None
    except Exception as err:  # a provider never raises into the rollout loop
        return provider_error(f"provider failed: {type(err).__name__}: {err}"[:500]), state
