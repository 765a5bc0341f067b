"""The chart ships its Grafana dashboards as ConfigMaps Grafana's sidecar discovers: rendered by
the real helm (hack/helm/build.sh), off by default, one ConfigMap per dashboards/*.json with the
file's JSON intact, the discovery label, and the namespace/annotations users set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.helm import CHART, by_kind, helm_binary, lint_chart, render_chart

FILES = sorted((CHART / "dashboards").glob("*.json"))


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def dashboards(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o for o in by_kind(objects, "ConfigMap")
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboards"
    ]  # fmt: skip


def test_off_by_default(helm: Path) -> None:
    assert dashboards(render_chart(helm, "ops")) == []


def test_one_configmap_per_dashboard_with_the_sidecar_label(helm: Path) -> None:
    maps = dashboards(render_chart(helm, "ops", ["dashboards.enabled=true"]))
    assert len(FILES) == 5
    assert sorted(m["metadata"]["name"] for m in maps) == [
        f"mlkube-dashboard-{p.stem}" for p in FILES
    ]
    ordered = sorted(maps, key=lambda m: m["metadata"]["name"])
    for cm, path in zip(ordered, FILES, strict=True):
        meta = cm["metadata"]
        assert meta["namespace"] == "ops"
        assert meta["labels"]["grafana_dashboard"] == "1"
        assert "annotations" not in meta
        (key,) = cm["data"]
        assert key == f"mlkube-{path.stem}.json"
        assert json.loads(cm["data"][key]) == json.loads(path.read_text())


def test_namespace_labels_and_folder_annotation(helm: Path) -> None:
    values = ["dashboards.enabled=true", "dashboards.namespace=monitoring",
              "dashboards.labels.grafana_dashboard=null", "dashboards.labels.team=ml",
              "dashboards.annotations.grafana_folder=mlkube"]  # fmt: skip
    maps = dashboards(render_chart(helm, "ops", values))
    assert len(maps) == len(FILES)
    for cm in maps:
        meta = cm["metadata"]
        assert meta["namespace"] == "monitoring"
        assert meta["labels"]["team"] == "ml"
        assert "grafana_dashboard" not in meta["labels"]
        assert meta["annotations"] == {"grafana_folder": "mlkube"}


def test_lint_strict_with_dashboards(helm: Path) -> None:
    lint_chart(helm, ["dashboards.enabled=true", "dashboards.annotations.grafana_folder=x"])


def test_the_operator_serves_its_metrics_on_the_named_port(helm: Path) -> None:
    """The operator and batch dashboards read the operator's own /metrics (handlers/metrics.py)."""
    (deployment,) = by_kind(render_chart(helm, "ops"), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["MLKUBE_METRICS_PORT"] == str(ports["metrics"])
