"""The Grafana dashboards shipped in the chart (charts/mlkube/dashboards/*.json): their shape,
their queries against the metrics mlkube's code really defines, parsed by the real `promtool`
(`hack/ensure-promtool`), and the operator's PrometheusRule alerts linked from their panels."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders import endpoint_monitoring as mon
from mlkube.builders.names import EndpointRef
from support.metric_names import defined_metrics, exposed_series

REPO = Path(__file__).resolve().parents[3]
DASHBOARDS = REPO / "charts" / "mlkube" / "dashboards"
FILES = sorted(DASHBOARDS.glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
METRIC = re.compile(r"\bmlkube_[a-z0-9_]+\b")
VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression: panel targets and the variables' label_values queries."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield target["expr"]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            yield var["query"]["query"]


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def test_one_dashboard_per_area() -> None:
    assert [p.stem for p in FILES] == ["batch", "drift", "operator", "router", "serving"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_schema(path: Path) -> None:
    board = load(path)
    assert board["uid"] == f"mlkube-{path.stem}" and len(board["uid"]) <= 40
    assert board["title"].startswith("mlkube / ") and "mlkube" in board["tags"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    assert "__inputs" not in board and "id" not in board  # an export for import, not a file
    (ds,) = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    names = [v["name"] for v in board["templating"]["list"]]
    assert len(names) == len(set(names))
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(board):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["title"] and (panel["type"] == "row" or panel.get("description"))
        if panel.get("targets"):
            assert panel["datasource"] == DATASOURCE, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE and target["expr"].strip()
    # No data source is hard-coded anywhere: every reference is the variable.
    for key, value in walk(board):
        if key == "datasource" and isinstance(value, dict):
            assert value == DATASOURCE
        if key == "uid" and value != board["uid"]:
            assert value == "${datasource}"
    # Every variable a query uses is defined (or one of Grafana's own).
    for expr in queries(board):
        for var in VARIABLE.findall(expr):
            assert var in names or var.startswith("__"), f"{var} undefined in {expr}"


def test_the_metric_scan_matches_the_live_registries() -> None:
    """The source scan names what prometheus_client really exposes (its naming rules hold)."""
    from prometheus_client import REGISTRY, CollectorRegistry

    from mlkube_serving import metrics as server_metrics
    from mlkube_serving.router.metrics import AgreementRatioCollector, RouterMetrics

    router = RouterMetrics(CollectorRegistry())
    router.registry.register(AgreementRatioCollector(router.source_for_ratio()))
    live = {m.name for m in router.registry.collect()}
    live |= {m.name for m in REGISTRY.collect() if m.name.startswith("mlkube_")}
    assert server_metrics.REQUESTS is not None
    scanned = defined_metrics()
    assert live and live <= set(scanned), live - set(scanned)
    assert {"mlkube_drift_score", "mlkube_drift_threshold"} <= set(scanned)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_queries_use_only_defined_metrics(path: Path) -> None:
    series = exposed_series(defined_metrics())
    for expr in queries(load(path)):
        used = set(METRIC.findall(expr))
        assert used, f"no mlkube metric in {expr}"
        assert used <= series, f"undefined {used - series} in {expr}"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run hack/ensure-promtool (apt-get install prometheus)")
    return path


def as_promql(expr: str) -> str:
    """Grafana's variables as Prometheus sees them after interpolation."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return VARIABLE.sub(".*", expr)


def test_queries_parse_with_promtool(tmp_path: Path) -> None:
    rules, count = [], 0
    for path in FILES:
        for expr in queries(load(path)):
            if expr.startswith("label_values("):
                inner = expr.removeprefix("label_values(").rsplit(",", 1)[0]
                expr = f"count({inner})"
            count += 1
            rules.append({"record": f"mlkube:dashboard:{count}", "expr": as_promql(expr)})
    rules_file = tmp_path / "dashboards.rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run([promtool(), "check", "rules", str(rules_file)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {count} rules found" in done.stdout
    # promtool is not lenient: a broken expression fails the same check.
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "bad", "rules": [
        {"record": "mlkube:bad", "expr": "sum by (deployment (rate(x[5m]))"}]}]}))  # fmt: skip
    bad = subprocess.run([promtool(), "check", "rules", str(rules_file)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert bad.returncode != 0


def alert_names() -> set[str]:
    owner = EndpointRef(namespace="ml", name="credit", uid="u")
    names = set()
    for backend in ("router", "gateway-api"):
        spec = OnlineEndpointSpec.model_validate({
            "trafficBackend": backend, "gateway": {"parentRefs": [{"name": "gw"}]},
            "deployments": [{"name": "blue", "model": "credit-risk-v3"}],
        })  # fmt: skip
        names |= {rule["alert"] for rule in mon.alert_rules(owner, spec)}
    return names


def test_every_alert_is_linked_with_its_threshold() -> None:
    thresholds = {"MLKubeHighErrorRate": mon.ERROR_RATIO,
                  "MLKubeHighLatency": mon.LATENCY_P99_SECONDS,
                  "MLKubeDriftDetected": 1}  # fmt: skip
    linked: dict[str, list[dict[str, Any]]] = {}
    alert_lists = 0
    for path in FILES:
        board = load(path)
        assert any(link.get("url", "").endswith("search=MLKube") for link in board["links"])
        for panel in panels(board):
            alert_lists += panel["type"] == "alertlist"
            for link in panel.get("links", []):
                match = re.fullmatch(r"/alerting/list\?search=(\w+)", link["url"])
                assert match, link
                linked.setdefault(match.group(1), []).append(panel)
    assert alert_lists == 3  # serving, router, drift: the areas the endpoint rules cover
    assert set(linked) == alert_names()
    for alert, threshold in thresholds.items():
        graphs = [p for p in linked[alert] if p["type"] == "timeseries"]
        assert graphs, alert
        for panel in graphs:
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert steps[-1]["value"] == threshold, (alert, panel["title"])
