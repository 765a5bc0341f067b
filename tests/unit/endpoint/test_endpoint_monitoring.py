"""ServiceMonitor and PrometheusRule of an endpoint; the rules are checked and unit-tested by
the real `promtool` (Debian package `prometheus`; `hack/ensure-promtool` installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.builders.endpoint import build_endpoint_children, child_key
from mlkube.builders.endpoint_monitoring import build_prometheus_rule, build_service_monitor
from mlkube.builders.model_facts import ModelFacts
from mlkube.builders.names import EndpointRef
from mlkube.builders.operator_config import OperatorConfig

OWNER_REF = {
    "apiVersion": "mlkube.dev/v1alpha1",
    "kind": "OnlineEndpoint",
    "name": "credit",
    "uid": "0f1e2d3c-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}
RELABELINGS = [
    {
        "sourceLabels": ["__meta_kubernetes_pod_label_mlkube_dev_endpoint"],
        "targetLabel": "endpoint",
        "action": "replace",
    },
    {
        "sourceLabels": ["__meta_kubernetes_pod_label_mlkube_dev_deployment"],
        "regex": "(.+)",
        "targetLabel": "deployment",
        "action": "replace",
    },
]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run hack/ensure-promtool (apt-get install prometheus)")
    return path


def test_service_monitor_literal(owner: EndpointRef) -> None:
    config = OperatorConfig(monitoring_labels=(("release", "kube-prometheus"),))
    assert build_service_monitor(owner, config) == {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": "credit",
            "namespace": "ml",
            "labels": {
                "release": "kube-prometheus",
                "app.kubernetes.io/managed-by": "mlkube",
                "mlkube.dev/endpoint": "credit",
                "mlkube.dev/component": "monitoring",
            },
            "ownerReferences": [OWNER_REF],
        },
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/managed-by": "mlkube",
                    "mlkube.dev/endpoint": "credit",
                }
            },
            "endpoints": [
                {"port": "metrics", "path": "/metrics", "interval": "30s",
                 "relabelings": RELABELINGS},
                {"port": "drift-metrics", "path": "/metrics", "interval": "30s",
                 "relabelings": RELABELINGS},
            ],
        },
    }  # fmt: skip


def test_monitoring_children_only_when_asked(
    owner: EndpointRef, spec: Any, models: dict[str, ModelFacts], config: OperatorConfig
) -> None:
    plain = build_endpoint_children(owner, spec, models, config, [])
    assert not [c for c in plain if c["apiVersion"] == "monitoring.coreos.com/v1"]
    with_monitoring = build_endpoint_children(owner, spec, models, config, [], monitoring=True)
    extra = [child_key(c) for c in with_monitoring if c not in plain]
    assert extra == [
        ("monitoring.coreos.com/v1", "ServiceMonitor", "credit"),
        ("monitoring.coreos.com/v1", "PrometheusRule", "credit"),
    ]


def test_rule_shape(owner: EndpointRef, spec: Any, config: OperatorConfig) -> None:
    rule = build_prometheus_rule(owner, spec, config)
    assert rule["metadata"]["ownerReferences"] == [OWNER_REF]
    (group,) = rule["spec"]["groups"]
    assert group["name"] == "mlkube.ml.credit"
    assert [(r["alert"], r["for"], r["labels"]["severity"]) for r in group["rules"]] == [
        ("MLKubeDriftDetected", "15m", "warning"),
        ("MLKubeDriftSamplesDropped", "15m", "warning"),
        ("MLKubeHighErrorRate", "10m", "critical"),
        ("MLKubeHighLatency", "10m", "warning"),
    ]
    assert group["rules"][0]["expr"] == (
        "max by (namespace, endpoint, deployment) "
        '(mlkube_drift_detected{namespace="ml",endpoint="credit"}) == 1'
    )


@pytest.mark.parametrize("backend", ["router", "gateway-api"])
def test_promtool_checks_the_rules(
    owner: EndpointRef, make_spec: Any, config: OperatorConfig, tmp_path: Path, backend: str
) -> None:
    spec = make_spec(trafficBackend=backend, gateway={"parentRefs": [{"name": "gw"}]})
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(build_prometheus_rule(owner, spec, config)["spec"]))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def _labels(deployment: str, severity: str) -> dict[str, str]:
    return {"severity": severity, "namespace": "ml", "endpoint": "credit", "deployment": deployment}


def _where(deployment: str) -> str:
    return f"ml/credit deployment {deployment}"


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    merged = {"namespace": "ml", "endpoint": "credit", **labels}
    inner = ",".join(f'{k}="{v}"' for k, v in merged.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _unit_tests(rules: dict[str, Any]) -> list[dict[str, Any]]:
    notes = {r["alert"]: r["annotations"]["description"] for r in rules["groups"][0]["rules"]}
    drift = {
        "summary": f"Input drift on {_where('blue')}",
        "description": notes["MLKubeDriftDetected"],
    }
    dropped = notes["MLKubeDriftSamplesDropped"]
    series = [
        # Drift on blue for 20 minutes; another endpoint's drift must not alert here.
        _series("mlkube_drift_detected", "1x30", deployment="blue", container="drift"),
        _series("mlkube_drift_detected", "0x30", deployment="green", container="drift"),
        {"series": 'mlkube_drift_detected{namespace="ml",endpoint="other",deployment="blue"}',
         "values": "1x30"},
        # blue: 10 of 100 sampled rows per minute lost in the sidecar (10 % > 5 %).
        _series("mlkube_drift_samples_sent_total", "0+100x30", deployment="blue", model="m"),
        _series("mlkube_drift_samples_dropped_total", "0+10x30", deployment="blue"),
        # green: 1 of 100 lost (1 %): fine.
        _series("mlkube_drift_samples_sent_total", "0+100x30", deployment="green", model="m"),
        _series("mlkube_drift_samples_dropped_total", "0+1x30", deployment="green"),
        # canary: the server never delivered anything, it only drops.
        _series("mlkube_drift_samples_send_dropped_total", "0+5x30", deployment="canary",
                model="m", reason="unreachable"),
        # Router: blue answers 5xx to 1 in 7 live requests; green's 5xx are mirror-only.
        _series("mlkube_router_requests_total", "0+60x30", deployment="blue", kind="live",
                status="200"),
        _series("mlkube_router_requests_total", "0+10x30", deployment="blue", kind="live",
                status="503"),
        _series("mlkube_router_requests_total", "0+60x30", deployment="green", kind="live",
                status="200"),
        _series("mlkube_router_requests_total", "0+60x30", deployment="green", kind="mirror",
                status="500"),
        # Router latency: blue's requests take 1-2.5 s, green's under 0.5 s.
        *[_series("mlkube_router_request_duration_seconds_bucket", v, deployment="blue",
                  kind="live", le=le)
          for le, v in (("0.5", "0x30"), ("1", "0x30"), ("2.5", "0+60x30"), ("+Inf", "0+60x30"))],
        *[_series("mlkube_router_request_duration_seconds_bucket", "0+60x30",
                  deployment="green", kind="live", le=le) for le in ("0.5", "1", "2.5", "+Inf")],
    ]  # fmt: skip
    return [
        {
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "MLKubeDriftDetected", "exp_alerts": []},
                {
                    "eval_time": "16m",
                    "alertname": "MLKubeDriftDetected",
                    "exp_alerts": [
                        {"exp_labels": _labels("blue", "warning"),
                         "exp_annotations": drift}
                    ],
                },
                {
                    "eval_time": "20m",
                    "alertname": "MLKubeDriftSamplesDropped",
                    "exp_alerts": [
                        {"exp_labels": _labels(d, "warning"),
                         "exp_annotations": {"summary": f"Drift samples dropped on {_where(d)}",
                                             "description": dropped}}
                        for d in ("blue", "canary")
                    ],
                },
                {
                    "eval_time": "15m",
                    "alertname": "MLKubeHighErrorRate",
                    "exp_alerts": [
                        {"exp_labels": _labels("blue", "critical"),
                         "exp_annotations": {"summary": f"5xx above 5% on {_where('blue')}",
                                             "description": "14.29% of requests answered 5xx."}}
                    ],
                },
                {
                    "eval_time": "15m",
                    "alertname": "MLKubeHighLatency",
                    "exp_alerts": [
                        {"exp_labels": _labels("blue", "warning"),
                         "exp_annotations": {"summary": f"p99 latency above 1s on {_where('blue')}",
                                             "description": "p99 request latency is 2.485s."}}
                    ],
                },
            ],
        }
    ]  # fmt: skip


def test_promtool_unit_tests_the_alerts(
    owner: EndpointRef, spec: Any, config: OperatorConfig, tmp_path: Path
) -> None:
    """Real series through the real rule engine: each alert fires for the right deployment
    only, after its `for:`, and never for another endpoint."""
    rules = build_prometheus_rule(owner, spec, config)["spec"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    suite = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": _unit_tests(rules),
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(suite))
    done = subprocess.run(
        [promtool(), "test", "rules", "tests.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
