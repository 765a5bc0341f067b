"""The Prometheus metric names mlkube's code defines, found by reading its source.

Every prometheus_client definition (`Counter`, `Gauge`, `Histogram`, `Summary`, the
`*MetricFamily` classes of custom collectors, and the drift collector's `_gauge`/`_scalar`
helpers) whose name is a string literal, or a module constant plus a literal
(`PREFIX + "requests"`), becomes the series names it exposes: counters `<name>_total`,
histograms and summaries `_bucket`/`_sum`/`_count`. Read from source, not from a live
registry, so the drift collector (which needs a worker and a profile) is covered as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = (REPO / "serving-image" / "mlkube_serving", REPO / "operator" / "mlkube")
COUNTERS = {"Counter", "CounterMetricFamily"}
HISTOGRAMS = {"Histogram", "HistogramMetricFamily", "Summary", "SummaryMetricFamily"}
GAUGES = {"Gauge", "GaugeMetricFamily", "InfoMetricFamily", "_gauge", "_scalar"}


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _constants(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for stmt in tree.body:
        target = value = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, value = stmt.target, stmt.value
        constant = isinstance(value, ast.Constant) and isinstance(value.value, str)
        if isinstance(target, ast.Name) and constant:
            out[target.id] = value.value  # type: ignore[union-attr]
    return out


def _string(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string(node.left, constants), _string(node.right, constants)
        return None if left is None or right is None else left + right
    return None


def defined_metrics(roots: tuple[Path, ...] = ROOTS) -> dict[str, str]:
    """{metric family name: "counter" | "histogram" | "gauge"} over every Python file."""
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            text = path.read_text()
            if "prometheus_client" not in text:
                continue
            tree = ast.parse(text)
            constants = _constants(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                callee = _callee(node)
                kind = (
                    "counter" if callee in COUNTERS
                    else "histogram" if callee in HISTOGRAMS
                    else "gauge" if callee in GAUGES else None
                )  # fmt: skip
                name = _string(node.args[0], constants)
                if kind and name and name.startswith("mlkube_"):
                    found[name.removesuffix("_total") if kind == "counter" else name] = kind
    return found


def exposed_series(metrics: dict[str, str]) -> set[str]:
    """The series names Prometheus stores for these families."""
    out: set[str] = set()
    for name, kind in metrics.items():
        if kind == "counter":
            out |= {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            out |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            out.add(name)
    return out
