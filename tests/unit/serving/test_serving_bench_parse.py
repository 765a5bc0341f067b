"""The serving benchmark's wrk output parser (a misparse would print wrong numbers silently)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

RUN = Path(__file__).resolve().parents[3] / "bench" / "serving" / "run.py"
WRK_OUTPUT = """Running 4s test @ http://127.0.0.1:1/v2/models/rf/infer
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   37.35ms   10.00ms  84.00ms   71.50%
    Req/Sec   100.00     10.00   200.00     50%
  Latency Distribution
     50%  402.00us
     75%    1.00ms
     90%  450.00us
     99%    1.20s
  100 requests in 1.00s, 1KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  19247.88
"""


def load_bench() -> ModuleType:
    if str(RUN.parent) not in sys.path:  # run.py imports its sibling grpc_load
        sys.path.insert(0, str(RUN.parent))
    spec = importlib.util.spec_from_file_location("serving_bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


def ab_rounds(
    bench: ModuleType, model: str, rps: list[tuple[float, float]],
    cpu: list[tuple[float, float]] | None = None,
) -> list[Any]:  # fmt: skip
    """Interleaved rounds as bench_floor_interleaved records them: (floor, mlkube) req/s and,
    optionally, (floor, mlkube) CPU per request."""
    m = bench.Measurement
    results = []
    for turn, (floor, ours) in enumerate(rps):
        floor_cpu, ours_cpu = cpu[turn] if cpu else (None, None)
        case = f"round {turn + 1}"
        results += [m("floor-ab", model, case, floor, 0.1, 0.3, 0, floor_cpu),
                    m("mlkube-ab", model, case, ours, 0.1, 0.4, 0, ours_cpu)]  # fmt: skip
    return results


def test_parse_wrk_reads_the_distribution_not_the_stdev_column() -> None:
    numbers = load_bench().parse_wrk(WRK_OUTPUT)
    assert numbers == {"rps": 19247.88, "p50": 0.402, "p99": 1200.0, "errors": 6, "requests": 100}


def test_the_floor_table_and_verdict_use_the_same_case() -> None:
    bench = load_bench()
    m = bench.Measurement
    results = [
        m("floor", "rf", "1 row, c=8", 50_000.0, 0.14, 0.3, 0),
        m("mlkube", "rf", "1 row, c=8", 36_000.0, 0.2, 0.45, 0),
        m("mlkube+batch", "rf", "1 row, c=8", 30_000.0, 0.3, 0.6, 0),
        m("floor", "lr", "1 row, c=8", 50_000.0, 0.14, 0.3, 0),
        m("mlkube", "lr", "1 row, c=8", 30_000.0, 0.2, 0.45, 0),
        m("mlkube+batch", "lr", "1 row, c=8", 30_000.0, 0.3, 0.6, 0),
    ]
    table = bench.floor_table(results)
    assert (
        "| rf | 1 row, c=8 | 50,000 | 36,000 | 0.45 | 0.72 | 30,000 | 0.30 | 0.60 | 0.83 |" in table
    )
    verdict = bench.floor_verdict(results)
    assert verdict[0].startswith("rf, 1 row, c=8: mlkube at 0.72x") and verdict[0].endswith(" met")
    assert verdict[1].endswith("NOT met")  # lr: 0.60x
    assert "one run each" in verdict[0]


def test_the_verdict_takes_the_median_of_interleaved_rounds() -> None:
    bench = load_bench()
    m = bench.Measurement
    results = ab_rounds(bench, "rf", [(20_000, 16_000), (30_000, 15_000), (25_000, 19_000)])
    results.append(m("floor", "rf", "1 row, c=8", 50_000.0, 0.14, 0.3, 0))  # ignored
    results.append(m("mlkube", "rf", "1 row, c=8", 5_000.0, 0.2, 0.45, 0))
    (verdict,) = bench.floor_verdict(results)
    # ratios 0.80, 0.50, 0.76: the median is 0.76
    assert verdict.startswith("rf, 1 row, c=8: mlkube at 0.76x") and verdict.endswith(": met")
    assert "median of 3 interleaved rounds" in verdict
    assert "| rf | 2 | 30,000 | 0.30 | 15,000 | 0.40 | 0.50 |" in bench.interleaved_table(results)
    assert len(bench.floor_verdict(results)) == 1  # no CPU figures: no capacity line


def test_the_capacity_view_is_the_median_cpu_share() -> None:
    bench = load_bench()
    cpu = [(30.0, 40.0), (30.0, 60.0), (28.0, 35.0)]
    results = ab_rounds(bench, "lr", [(20_000, 15_000)] * 3, cpu)
    verdict, capacity = bench.floor_verdict(results)
    assert verdict.startswith("lr, 1 row, c=8: mlkube at 0.75x")
    # shares 0.75, 0.50, 0.80: the median is 0.75; CPU medians 40.0 and 30.0
    assert capacity.strip().startswith("capacity view")
    assert "mlkube 40.0 us, the floor 30.0 us, 0.75x the floor's capacity" in capacity
    assert "| lr | 1 | 20,000 | 0.30 | 15,000 | 0.40 | 0.75 | 30.0 | 40.0 | 0.75 |" in (
        bench.interleaved_table(results)
    )


def test_cpu_seconds_counts_this_process() -> None:
    import os

    bench = load_bench()
    before = bench.cpu_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))  # ~0.1 s of CPU
    assert bench.cpu_seconds(os.getpid()) - before >= 0.05


def test_ghz_reports_are_read_in_milliseconds() -> None:
    load_bench()
    from grpc_load import parse_ghz

    report = (
        '{"rps": 12345.6, "latencyDistribution": [{"percentage": 50, "latency": 420000},'
        ' {"percentage": 99, "latency": 1500000}], "statusCodeDistribution":'
        ' {"OK": 100, "Unavailable": 2}}'
    )
    assert parse_ghz(report) == {"rps": 12345.6, "p50": 0.42, "p99": 1.5, "errors": 2}
    # Calls cut off by ghz itself at the end of the run are not counted.
    cut = report.replace("}}", '}, "errorDistribution": {"rpc error: code = Unavailable desc ='
                         ' read tcp: use of closed network connection": 1}}')  # fmt: skip
    assert parse_ghz(cut)["errors"] == 1
