"""The figures of one N (`Result`) and how they are printed: one Markdown table with a column
per N, then the growth per object between the two largest N (slope: extra seconds or MiB per
extra endpoint). Pure, so the unit test checks what the benchmark prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Result:
    n: int
    ready_s: float = float("nan")  # creation started → every endpoint Ready
    children_ms: list[float] = field(default_factory=list)  # per endpoint: created → 1st child
    ready_ms: list[float] = field(default_factory=list)  # per endpoint: created → Ready
    model_ms: list[float] = field(default_factory=list)  # per Model: created → verified
    floor_s: float = float("nan")  # the floor: every request returned
    floor_available_s: float = float("nan")  # the floor: every Deployment available
    floor_requests: int = 0
    peak_rss_mib: float = float("nan")  # converge (the first process)
    restart_rss_mib: float = float("nan")  # the restarted process: restart, traffic, idle
    converge_cpu_s: float = float("nan")
    converge_requests: dict[str, int] = field(default_factory=dict)  # "verb resource" -> n
    restart_settle_s: float = float("nan")  # operator started → its last request (NaN: never)
    restart_requests: dict[str, int] = field(default_factory=dict)
    restart_writes: list[str] = field(default_factory=list)
    traffic_s: float = float("nan")  # patches started → every router ConfigMap carries them
    traffic_ms: list[float] = field(default_factory=list)
    traffic_cpu_s: float = float("nan")  # patches started → the operator quiet again
    traffic_requests: dict[str, int] = field(default_factory=dict)
    idle_s: float = 0.0
    idle_cpu_s: float = float("nan")
    idle_requests: dict[str, int] = field(default_factory=dict)
    idle_writes: list[str] = field(default_factory=list)
    load: str = ""

    @property
    def ratio(self) -> float:
        return self.ready_s / self.floor_s if self.floor_s else float("nan")


def total(requests: dict[str, int], writes_only: bool = False) -> int:
    verbs = ("create", "update", "patch", "delete", "deletecollection")
    return sum(n for k, n in requests.items() if not writes_only or k.split()[0] in verbs)


ROWS = (
    ("all Ready (s)", lambda r: r.ready_s, "{:.1f}"),
    ("floor: all applied (s)", lambda r: r.floor_s, "{:.1f}"),
    ("mlkube / floor", lambda r: r.ratio, "{:.2f}x"),
    ("floor: all Deployments available (s)", lambda r: r.floor_available_s, "{:.1f}"),
    ("created → first child p50 (ms)", lambda r: percentile(r.children_ms, 50), "{:.0f}"),
    ("created → first child p99 (ms)", lambda r: percentile(r.children_ms, 99), "{:.0f}"),
    ("Model created → verified p50 (ms)", lambda r: percentile(r.model_ms, 50), "{:.0f}"),
    ("Model created → verified p99 (ms)", lambda r: percentile(r.model_ms, 99), "{:.0f}"),
    ("created → Ready p50 (ms)", lambda r: percentile(r.ready_ms, 50), "{:.0f}"),
    ("created → Ready p99 (ms)", lambda r: percentile(r.ready_ms, 99), "{:.0f}"),
    ("operator peak RSS, converge (MiB)", lambda r: r.peak_rss_mib, "{:.0f}"),
    ("operator peak RSS, restarted (MiB)", lambda r: r.restart_rss_mib, "{:.0f}"),
    ("operator CPU to converge (s)", lambda r: r.converge_cpu_s, "{:.1f}"),
    ("operator requests to converge", lambda r: total(r.converge_requests), "{}"),
    ("  per endpoint", lambda r: total(r.converge_requests) / r.n, "{:.1f}"),
    ("  writes per endpoint", lambda r: total(r.converge_requests, True) / r.n, "{:.1f}"),
    ("floor requests per endpoint", lambda r: r.floor_requests / r.n, "{:.1f}"),
    ("restart: settled after (s)", lambda r: r.restart_settle_s, "{:.1f}"),
    ("restart: requests", lambda r: total(r.restart_requests), "{}"),
    ("restart: writes", lambda r: len(r.restart_writes), "{}"),
    ("traffic change: all routers (s)", lambda r: r.traffic_s, "{:.1f}"),
    ("traffic change p50 (ms)", lambda r: percentile(r.traffic_ms, 50), "{:.0f}"),
    ("traffic change p99 (ms)", lambda r: percentile(r.traffic_ms, 99), "{:.0f}"),
    ("traffic change: operator CPU (s)", lambda r: r.traffic_cpu_s, "{:.1f}"),
    ("traffic change: requests per endpoint", lambda r: total(r.traffic_requests) / r.n, "{:.1f}"),
    (
        "traffic change: writes per endpoint",
        lambda r: total(r.traffic_requests, True) / r.n,
        "{:.1f}",
    ),
    ("idle: window (s)", lambda r: r.idle_s, "{:.0f}"),
    ("idle: operator CPU (s)", lambda r: r.idle_cpu_s, "{:.1f}"),
    ("idle: requests", lambda r: total(r.idle_requests), "{}"),
    ("idle: writes", lambda r: len(r.idle_writes), "{}"),
)

GROWTH = (
    ("all Ready (ms per endpoint)", lambda r: r.ready_s * 1000),
    ("floor (ms per endpoint)", lambda r: r.floor_s * 1000),
    ("peak RSS (KiB per endpoint)", lambda r: r.peak_rss_mib * 1024),
    ("CPU to converge (ms per endpoint)", lambda r: r.converge_cpu_s * 1000),
    ("requests to converge (per endpoint)", lambda r: float(total(r.converge_requests))),
)


def fmt(fmt_: str, value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return fmt_.format(value)


def table(results: list[Result]) -> str:
    head = "| | " + " | ".join(f"N={r.n}" for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for label, get, f in ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt(f, get(r)) for r in results) + " |")
    return "\n".join(lines)


def growth(results: list[Result]) -> str:
    """Slope between the two largest N: what one more endpoint costs."""
    ordered = sorted(results, key=lambda r: r.n)
    if len(ordered) < 2:
        return "(growth per object needs two N)"
    a, b = ordered[-2], ordered[-1]
    lines = [f"growth per endpoint, N={a.n} → N={b.n}:"]
    for label, get in GROWTH:
        lines.append(f"  {label}: {fmt('{:.2f}', (get(b) - get(a)) / (b.n - a.n))}")
    return "\n".join(lines)


def requests_table(results: list[Result], phase: str) -> str:
    """One phase's requests by verb and resource, a column per N."""
    rows = [getattr(r, f"{phase}_requests") for r in results]
    keys = sorted(
        {k for row in rows for k in row}, key=lambda k: -max(row.get(k, 0) for row in rows)
    )
    lines = [f"| {phase} requests | " + " | ".join(f"N={r.n}" for r in results) + " |",
             "|---" * (len(results) + 1) + "|"]  # fmt: skip
    lines += [f"| {k} | " + " | ".join(str(row.get(k, 0)) for row in rows) + " |" for k in keys]
    return "\n".join(lines)
