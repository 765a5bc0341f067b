"""The drift hook's cost from two real servers switched in a crossover: what resolves 1%.

The other two views each cancel one source of noise and suffer the other. Separate servers
loaded together share the machine's moment (steal by other tenants of the host, cache
pressure: ±15% from one tenth of a second to the next on a busy day), but two identical
processes differ by up to ~4% for their whole life (memory layout), far above a 1% budget.
One server switched in place has no such offset, but its phases do not share a moment, and
with the steal of a shared host each phase's CPU per request moves by 10-20 points.

Here two identical servers (A and B, the same flags, both pinned to the server core, each
under its own wrk) switch their sample sinks on the same wall-clock phase boundaries in
opposite roles: in one phase A samples and B does not, in another the reverse. Per phase the
ratio A/B of CPU per request cancels the machine's moment (both ran in it on the same core);
over the two phases of a pair, the ratio of those ratios cancels the processes' offset:

    r1 = a / (b * (1 + x))   (A off, B sampling)      r2 = a * (1 + x) / b   (A sampling, B off)
    1 + x = sqrt(r2 / r1)

and `x` is the extra CPU per request of sampling, the capacity loss 1 - 1 / (1 + x). The pairs
(off, default), (default, off), (off, 100%), (100%, off), (off, off2), (off2, off) run in a
random order per cycle that both servers derive from the cycle's number; the last two are the
A/A pair, whose "loss" is what the run resolves. `python bench/drift/crossover.py --probes`
adds hook_probes.py's diagnostic sinks (what part of a sampled request costs what).

The hook's sender flushes a full lane or after 1 s, so a sampling phase's delivery could land
in another phase: each phase ends with its sink's pending samples delivered, and every phase
(with a hook or not) ends with the same round trip through the server's loop. Phases last the
sender's own period (1 s): shorter ones deliver more often than a server does.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import resource
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

MEASURED = ["default", "100%", "off2"]  # off2: no hook, the A/A pair


def pairs(measured: list[str]) -> list[tuple[str, str]]:
    """(A's sink, B's sink) per phase of a cycle: each measured sink with its mirror."""
    return [pair for label in measured for pair in (("off", label), (label, "off"))]


def schedule(k: int, measured: list[str]) -> tuple[str, str]:
    """The pair of wall-clock phase `k`: both servers compute the same without talking."""
    cycle, position = divmod(k, 2 * len(measured))
    every = pairs(measured)
    return random.Random(cycle).sample(every, len(every))[position]


def run_role(
    plane: Any,
    sinks: dict[str, Any],
    served: list[int],
    role: str,
    labels: list[str],
    phase: float,
    out: str,
) -> None:
    """The switching thread of one server of the pair (inside the server process); `served`
    counts the requests served, `labels` are "off" and the measured sinks."""
    side = 0 if role == "A" else 1
    measured = labels[1:]
    phases: list[tuple[int, str, float, int, int, int]] = []
    k = int(time.time() / phase) + 1
    time.sleep(max(0.0, k * phase - time.time()))
    while True:
        label = schedule(k, measured)[side]
        sink = sinks[label]
        loop = sinks["100%"]._loop
        start_phase(plane, sink, loop)
        n0, c0, u0 = served[0], time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(max(0.0, (k + 1) * phase - time.time()))
        deliver(sink, loop)
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        # minor page faults and voluntary context switches: where a sink's cost may hide
        phases.append((k, label, time.process_time() - c0, served[0] - n0,
                       u1.ru_minflt - u0.ru_minflt, u1.ru_nvcsw - u0.ru_nvcsw))  # fmt: skip
        k += 1
        if k % (2 * len(measured)) == 0:
            Path(out + ".tmp").write_text(json.dumps(phases))
            os.replace(out + ".tmp", out)


def start_phase(plane: Any, sink: Any, loop: asyncio.AbstractEventLoop) -> None:
    """`plane.sink` for the next phase; a `SampleGate` (the server's default rate) is attached
    on the loop instead and sets `plane.sink` itself (`deliver` detaches it)."""
    if hasattr(sink, "attach"):
        plane.sink = None
        loop.call_soon_threadsafe(sink.attach, plane)
    else:
        plane.sink = sink


def deliver(sink: Any, loop: asyncio.AbstractEventLoop, flush: bool = True) -> None:
    """A hook's pending samples sent now, inside the phase that took them: its sender flushes
    a full lane or after 1 s, which could land in another phase. (Smaller batches than a
    server sends: a little more cost per sample than in production, never less.)

    Every phase, with a hook or not, ends with the same round trip through the server's loop:
    handing a coroutine from this thread to the loop and waiting for it costs the server ~1%
    of a phase (two GIL hand-offs and wake-ups), which a phase without a hook must pay too or
    it is counted as the hook's cost."""
    asyncio.run_coroutine_threadsafe(_end(sink, flush), loop).result(5)


async def _end(sink: Any, flush: bool = True) -> None:
    """On the loop: a gate closed (its `plane.sink` back to None), then (with `flush`) the
    hook flushed."""
    detach = getattr(sink, "detach", None)
    if detach is not None:
        sink = detach()
    send = getattr(sink, "flush", None)
    if flush and send is not None and getattr(sink, "_loop", None):
        await send(seal=True)


def measure(
    model_dir: Path,
    drift_url: str,
    wrk: str,
    seconds: float,
    phase: float,
    workdir: Path,
    pin: list[str],
    spool_dir: str | None = None,
    measured: list[str] = MEASURED,
) -> dict[str, list[float]]:
    """Run the pair under wrk for `seconds`; per measured sink, the per-cycle capacity losses
    (percent)."""
    from hook_ab import launch
    from run import request_body, run_wrk, stop, wait_ready

    servers: dict[str, tuple[subprocess.Popen[bytes], str, Path]] = {}
    try:
        for role in ("A", "B"):
            out = workdir / f"crossover-{model_dir.name}-{role}.json"
            out.unlink(missing_ok=True)
            spec = f"role={role}:{','.join(measured)}"
            process, base = launch(model_dir, drift_url, spool_dir, phase, out, spec, pin)
            servers[role] = (process, base, out)
        for process, base, _ in servers.values():
            wait_ready(f"{base}/v2/health/ready", process)
        dirs = {role: workdir / f"crossover-wrk-{role}" for role in servers}

        def load(role: str, duration: float) -> None:
            dirs[role].mkdir(exist_ok=True)
            run_wrk(wrk, f"{servers[role][1]}/v2/models/m/infer", request_body(1), 8, duration,
                    dirs[role])  # fmt: skip

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(load, servers, [2.0, 2.0]))  # warm-up
            deadline = time.monotonic() + 30 * phase * len(measured) + 30
            while not all(out.exists() for _, _, out in servers.values()):
                if time.monotonic() > deadline:  # a switching thread died: show its log
                    for _, _, out in servers.values():
                        log = out.with_suffix(".log")
                        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                        print(f"--- {log.name} (last 3,000 characters)\n{tail}")
                    raise RuntimeError(f"no phases from the pair after warm-up; see {workdir}")
                time.sleep(0.2)
            start = time.time()
            list(pool.map(load, servers, [seconds, seconds]))
        phases = {role: [p for p in json.loads(out.read_text()) if p[0] * phase >= start]
                  for role, (_, _, out) in servers.items()}  # fmt: skip
    finally:
        for process, _, _ in servers.values():
            stop(process)
    report_flushes(model_dir.name, [Path(str(out) + ".flushes") for _, _, out in servers.values()])
    report_events(model_dir.name, [p for role in phases.values() for p in role])
    for role, side in (("A", 0), ("B", 1)):  # both servers ran the schedule this process reads
        if not all(schedule(k, measured)[side] == label for k, label, *_ in phases[role]):
            raise RuntimeError(f"server {role} switched on another schedule than {measured}")
    return losses(phases["A"], phases["B"], measured)


def report_flushes(model: str, files: list[Path]) -> None:
    """What one flush of each hook cost its server's loop (CPU, median and p90) and held."""
    by_rate: dict[float, list[list[float]]] = {}
    for file in files:
        if file.exists():
            for rate, cpu, held, *failed in json.loads(file.read_text()):
                by_rate.setdefault(rate, []).append([cpu / 1e3, held, sum(failed)])
    for rate, rows in sorted(by_rate.items()):
        cpu = sorted(r[0] for r in rows)
        held = median(r[1] for r in rows)
        failed = sum(r[2] for r in rows)
        print(
            f"  {model} hook at {rate:g}: {len(rows)} flushes of ~{held:.0f} samples, CPU per "
            f"flush median {median(cpu):.0f} us, p90 {cpu[(9 * len(cpu)) // 10]:.0f} us; "
            f"{failed:.0f} not delivered (ring full)"
        )


def report_events(model: str, phases: list[list[Any]]) -> None:
    """Per sink, the median minor page faults and voluntary context switches per 1,000
    requests over both servers' phases."""
    by_label: dict[str, list[tuple[float, float]]] = {}
    for _, label, _, served, *events in phases:
        if served and len(events) == 2:
            by_label.setdefault(label, []).append(
                (1000 * events[0] / served, 1000 * events[1] / served)
            )
    for label, rows in sorted(by_label.items()):
        faults = median(r[0] for r in rows)
        switches = median(r[1] for r in rows)
        print(
            f"  {model} {label}: per 1,000 requests {faults:.1f} minor faults, "
            f"{switches:.1f} voluntary context switches (median of {len(rows)} phases)"
        )


def losses(a: list[list[Any]], b: list[list[Any]], measured: list[str]) -> dict[str, list[float]]:
    """Per cycle and measured configuration: 100 * (1 - 1 / sqrt(r2 / r1))."""
    per_phase: dict[int, float] = {}
    b_by_k = {p[0]: p for p in b}
    for k, _, cpu_a, n_a, *_ in a:
        _, _, cpu_b, n_b, *_ = b_by_k.get(k, (k, "", 0.0, 0))
        if n_a and n_b and cpu_a > 0 and cpu_b > 0:
            per_phase[k] = (cpu_a / n_a) / (cpu_b / n_b)  # A's CPU/request over B's
    found: dict[str, list[float]] = {label: [] for label in measured}
    size = 2 * len(measured)
    for cycle in sorted({k // size for k in per_phase}):
        ratio = {schedule(k, measured): per_phase[k]
                 for k in range(cycle * size, (cycle + 1) * size) if k in per_phase}  # fmt: skip
        for label in measured:
            r1, r2 = ratio.get(("off", label)), ratio.get((label, "off"))
            if r1 and r2:
                found[label].append(100 * (1 - 1 / math.sqrt(r2 / r1)))
    return found


def summary(values: list[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return math.nan, math.nan, math.nan
    return median(ordered), ordered[n // 4], ordered[(3 * n) // 4]
