"""Prometheus Operator objects of an endpoint: a ServiceMonitor and a PrometheusRule.

Built only when the cluster serves `monitoring.coreos.com/v1` (the handler asks discovery).
A ServiceMonitor, not a PodMonitor: every pod worth scraping already sits behind one of the
endpoint's Services (model servers, router), the drift sidecar's metrics port is listed on its
deployment's Service (its ingest port is not), and one label selector then covers them all.
Relabelings turn the pods' `mlkube.dev/endpoint` and `mlkube.dev/deployment` labels into the
`endpoint` and `deployment` target labels the alerts group by (`endpoint` would otherwise be the
port name). Each rule selects its own endpoint, so N endpoints never alert N times.
"""

from __future__ import annotations

from typing import Any, Final

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_drift import DRIFT_METRICS_PORT_NAME
from mlkube.builders.names import (
    EndpointRef,
    child_labels,
    child_metadata,
    dns_name,
    endpoint_selector,
    label_value,
)
from mlkube.builders.operator_config import OperatorConfig

MONITORING_API_VERSION: Final = "monitoring.coreos.com/v1"
COMPONENT_MONITORING: Final = "monitoring"
SCRAPE_INTERVAL: Final = "30s"
# Alert thresholds (documented in docs/drift.md); add your own rules for other ones.
DRIFT_FOR: Final = "15m"
DROP_RATIO: Final = 0.05
ERROR_RATIO: Final = 0.05
LATENCY_P99_SECONDS: Final = 1.0
SERVING_FOR: Final = "10m"

_BY: Final = "namespace, endpoint, deployment"
SERVER_DROPPED: Final = "mlkube_drift_samples_send_dropped_total"  # model server (drift hook)
SIDECAR_DROPPED: Final = "mlkube_drift_samples_dropped_total"  # drift sidecar


def _relabelings() -> list[dict[str, Any]]:
    return [
        {
            "sourceLabels": ["__meta_kubernetes_pod_label_mlkube_dev_endpoint"],
            "targetLabel": "endpoint",
            "action": "replace",
        },
        {
            # Router pods have no deployment label: their metrics carry their own.
            "sourceLabels": ["__meta_kubernetes_pod_label_mlkube_dev_deployment"],
            "regex": "(.+)",
            "targetLabel": "deployment",
            "action": "replace",
        },
    ]


def _metadata(owner: EndpointRef, config: OperatorConfig) -> dict[str, Any]:
    labels = {**dict(config.monitoring_labels), **child_labels(owner.name, COMPONENT_MONITORING)}
    return child_metadata(owner, dns_name(owner.name), labels)


def build_service_monitor(owner: EndpointRef, config: OperatorConfig) -> dict[str, Any]:
    """Scrape the metrics port of every Service of the endpoint, and the drift metrics port."""
    endpoints = [
        {
            "port": port,
            "path": "/metrics",
            "interval": SCRAPE_INTERVAL,
            "relabelings": _relabelings(),
        }
        for port in ("metrics", DRIFT_METRICS_PORT_NAME)
    ]
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": _metadata(owner, config),
        "spec": {
            "selector": {"matchLabels": endpoint_selector(owner.name)},
            "endpoints": endpoints,
        },
    }


def _serving_series(spec: OnlineEndpointSpec) -> tuple[str, str, str]:
    """(request counter, histogram, extra selector): the router's, else the model servers'."""
    if spec.traffic_backend == "router":
        return (
            "mlkube_router_requests_total",
            "mlkube_router_request_duration_seconds_bucket",
            ',kind!="mirror"',
        )
    return ("mlkube_requests_total", "mlkube_request_duration_seconds_bucket", "")


def alert_rules(owner: EndpointRef, spec: OnlineEndpointSpec) -> list[dict[str, Any]]:
    """The endpoint's alerting rules (Prometheus rule-file syntax)."""
    sel = f'namespace="{owner.namespace}",endpoint="{label_value(owner.name)}"'
    requests, histogram, extra = _serving_series(spec)
    # Rows lost on either side: the server's send queue, or the sidecar's ingest queue.
    lost = f'{{__name__=~"{SERVER_DROPPED}|{SIDECAR_DROPPED}",{sel}}}'
    dropped = f"sum by ({_BY}) (rate({lost}[10m]))"
    sent = f"sum by ({_BY}) (rate(mlkube_drift_samples_sent_total{{{sel}}}[10m]))"
    errors = f'sum by ({_BY}) (rate({requests}{{{sel}{extra},status=~"5.."}}[5m]))'
    total = f"sum by ({_BY}) (rate({requests}{{{sel}{extra}}}[5m]))"
    buckets = f"sum by ({_BY}, le) (rate({histogram}{{{sel}{extra}}}[5m]))"
    where = "{{ $labels.namespace }}/{{ $labels.endpoint }} deployment {{ $labels.deployment }}"
    return [
        {
            "alert": "MLKubeDriftDetected",
            "expr": f"max by ({_BY}) (mlkube_drift_detected{{{sel}}}) == 1",
            "for": DRIFT_FOR,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"Input drift on {where}",
                "description": (
                    "The drift sidecar has reported dataset drift against the Model's baseline "
                    f"for {DRIFT_FOR}. See status.deployments[].drift of the OnlineEndpoint."
                ),
            },
        },
        {
            "alert": "MLKubeDriftSamplesDropped",
            # Ratio to delivered samples; also fires when nothing gets delivered at all.
            "expr": (
                f"({dropped} / {sent} > {DROP_RATIO}) or ({dropped} > 0 unless on ({_BY}) {sent})"
            ),
            "for": DRIFT_FOR,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"Drift samples dropped on {where}",
                "description": (
                    f"More than {DROP_RATIO:.0%} of sampled rows never reach the drift window "
                    "(queue full or sidecar unreachable): the drift verdict lags or is blind."
                ),
            },
        },
        {
            "alert": "MLKubeHighErrorRate",
            "expr": f"{errors} / {total} > {ERROR_RATIO}",
            "for": SERVING_FOR,
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": f"5xx above {ERROR_RATIO:.0%} on {where}",
                "description": "{{ $value | humanizePercentage }} of requests answered 5xx.",
            },
        },
        {
            "alert": "MLKubeHighLatency",
            "expr": f"histogram_quantile(0.99, {buckets}) > {LATENCY_P99_SECONDS:g}",
            "for": SERVING_FOR,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"p99 latency above {LATENCY_P99_SECONDS:g}s on {where}",
                "description": "p99 request latency is {{ $value | humanizeDuration }}.",
            },
        },
    ]


def build_prometheus_rule(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> dict[str, Any]:
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": _metadata(owner, config),
        "spec": {
            "groups": [
                {
                    "name": f"mlkube.{owner.namespace}.{owner.name}",
                    "rules": alert_rules(owner, spec),
                }
            ]
        },
    }


def build_monitoring_children(
    owner: EndpointRef, spec: OnlineEndpointSpec, config: OperatorConfig
) -> list[dict[str, Any]]:
    return [build_service_monitor(owner, config), build_prometheus_rule(owner, spec, config)]
