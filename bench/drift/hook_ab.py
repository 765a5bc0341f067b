"""The drift hook's cost inside one real model server process, toggled on and off in place.

serving_overhead.py compares separate server processes; on a shared machine their CPU per
request differs by a few percent for reasons that have nothing to do with the hook. Here one
real server (uvicorn, uvloop, httptools, 1 worker, the RF or LR model of bench/serving) serves
wrk's load while a timer thread switches the dataplane's sample sink between phases every
`--phase` seconds (off, then each hook variant), and adds up this process's CPU time and served
requests per phase. Neighbours and cache state are shared by all phases, so the per-request
difference is the hook's, to a few tenths of a microsecond. Variants: `hook` (the DriftHook at
100%), `default` (the same at the server's default rate), `offer-only` (the request-path part
without delivery: buffers are recycled instead of sent).

Usage: python bench/drift/hook_ab.py [--model rf|lr] [--seconds 40] [--phase 0.5]
(it starts its own sidecar and wrk; the server runs in a child process of itself)
"""

from __future__ import annotations

import argparse
import json
import resource
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))


def serve(
    model_dir: str,
    port: int,
    metrics_port: int,
    drift_url: str,
    phase: float,
    out: str,
    rate: float,
) -> None:
    """The server process: a real `serve` with a sink switcher thread."""
    from mlkube_serving import dataplane as dp
    from mlkube_serving import server
    from mlkube_serving.drift_hook import DriftHook
    from mlkube_serving.settings import Settings

    planes: list[Any] = []
    counts = {"n": 0}
    original_infer = dp.DataPlane.infer_entry

    def counted(self: Any, entry: Any, request: Any) -> Any:
        counts["n"] += 1
        return original_infer(self, entry, request)

    original_init = dp.DataPlane.__init__

    def init(self: Any, sink: Any = None) -> None:
        original_init(self, sink)
        planes.append(self)

    dp.DataPlane.__init__ = init  # type: ignore[method-assign]
    dp.DataPlane.infer_entry = counted  # type: ignore[method-assign]

    def switcher() -> None:
        while (
            not planes or planes[0].sink is None or getattr(planes[0].sink, "_task", None) is None
        ):
            time.sleep(0.1)
        plane = planes[0]
        hook: DriftHook = plane.sink
        default = Settings().drift_sample_rate
        sinks: dict[str, Any] = {"off": None, "hook": hook}
        if rate == 1.0:
            low = DriftHook.__new__(DriftHook)
            low.__dict__.update(hook.__dict__)
            low._rate = default
            sinks["default"] = low

        class Call:
            def offer(self, *args: Any) -> None:
                return None

        sinks["call"] = Call()

        class Timed:
            """The hook, each offer timed in place (median: robust to preemption)."""

            def __init__(self, inner: Any) -> None:
                self.inner = inner
                self.times: list[int] = []

            def offer(self, *args: Any) -> None:
                t0 = time.perf_counter_ns()
                self.inner.offer(*args)
                self.times.append(time.perf_counter_ns() - t0)

        timed, timed_call = Timed(hook), Timed(Call())
        sinks["timed"], sinks["timed-call"] = timed, timed_call
        local = DriftHook(hook_url(hook), 1.0)  # never started: nothing is sent
        sinks["offer-only"] = local
        # per phase: (variant, CPU s, user s, system s, requests)
        phases: list[tuple[str, float, float, float, int]] = []
        names = list(sinks)
        i = 0
        started = time.monotonic()
        while True:
            name = names[i % len(names)]
            with local._lock:  # recycle the unsent buffers of `offer-only`
                for buf in local._sealed:
                    buf.reset()
                    local._free.append(buf)
                local._sealed.clear()
                local._exhausted = False
                held = local._lane.take()
                if held is not None:
                    local._lane.give_back(held[0], held[1])
            plane.sink = sinks[name]
            n0, c0, r0 = counts["n"], time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
            time.sleep(phase)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            phases.append((name, time.process_time() - c0, r1.ru_utime - r0.ru_utime,
                           r1.ru_stime - r0.ru_stime, counts["n"] - n0))  # fmt: skip
            i += 1
            if time.monotonic() - started > 1.0 and i % len(names) == 0:
                for t in (timed, timed_call):
                    if len(t.times) > 20000:
                        del t.times[:10000]
                Path(out + ".timed").write_text(json.dumps([timed.times, timed_call.times]))
                Path(out).write_text(json.dumps(phases))

    threading.Thread(target=switcher, daemon=True).start()
    settings = Settings(
        model_dir=model_dir, model_name="m", http_port=port, metrics_port=metrics_port, host="127.0.0.1",
        workers=1, drift_url=drift_url, drift_sample_rate=rate,
    )  # fmt: skip
    server.run(settings)


def report(model: str, rps: float, before: list[Any], after: list[Any]) -> None:
    """Per cycle (every variant once), each variant's CPU/request minus `off`'s: mean, spread."""
    from statistics import mean, median, stdev

    phases = after[len(before) :]
    names = list(dict.fromkeys(p[0] for p in phases))
    cycles = [phases[i : i + len(names)] for i in range(0, len(phases), len(names))]
    cycles = [c for c in cycles if len(c) == len(names) and all(p[4] for p in c)]
    print(f"{model}: {rps:.0f} req/s overall, {len(cycles)} cycles of {len(names)} phases, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    per: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for cycle in cycles:
        for name, cpu, user, system, n in cycle:
            per[name].append((1e6 * cpu / n, 1e6 * user / n, 1e6 * system / n))
    off = [v[0] for v in per["off"]]
    for name in names:
        us = [v[0] for v in per[name]]
        extra = [u - o for u, o in zip(us, off, strict=True)]
        err = stdev(extra) / len(extra) ** 0.5 if len(extra) > 1 else 0.0
        loss = [100 * (1 - o / u) for u, o in zip(us, off, strict=True)]
        print(
            f"  {name:10} {median(us):6.2f} us/req  extra {mean(extra):+5.2f} +- {err:4.2f} us "
            f"(median {median(extra):+5.2f}), capacity loss {median(loss):5.1f}%  "
            f"user {mean(v[1] for v in per[name]):5.2f} sys {mean(v[2] for v in per[name]):5.2f}"
        )


def hook_url(hook: Any) -> str:
    return f"http://{hook._host}:{hook._port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="rf")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--phase", type=float, default=0.5)
    parser.add_argument("--serve", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        model_dir, port, metrics_port, url, phase, out, rate = args.serve
        serve(model_dir, int(port), int(metrics_port), url, float(phase), out, float(rate))
        return 0
    import numpy as np
    import pandas as pd
    from run import build_models, ensure_wrk, free_port, request_body, run_wrk, stop, wait_ready

    from mlkube_serving.drift.profile import build_profile, write_profile

    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="mlkube-hook-ab-") as tmp:
        work = Path(tmp)
        models = build_models(work)
        x = np.random.default_rng(1).normal(size=(5000, 20))
        write_profile(build_profile(pd.DataFrame(x, columns=[f"x{i}" for i in range(20)]),
                                    window_size=1000), work / "profile.json")  # fmt: skip
        side, side_metrics, port, metrics_port = (free_port() for _ in range(4))
        sidecar = subprocess.Popen([sys.executable, "-m", "mlkube_serving", "drift-sidecar",
                                    "--profile", str(work / "profile.json"), "--host",
                                    "127.0.0.1", "--port", str(side), "--metrics-port",
                                    str(side_metrics)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        out = work / "totals.json"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(models[args.model]),
                                   str(port), str(metrics_port), f"http://127.0.0.1:{side}", str(args.phase),
                                   str(out), "1.0"], stdout=subprocess.DEVNULL,
                                  stderr=open(work / "server.log", "wb"))  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{side}/v1/summary", sidecar)
            wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", server)
            url = f"http://127.0.0.1:{port}/v2/models/m/infer"
            run_wrk(wrk, url, request_body(1), 8, 2.0, work)
            while not out.exists():
                time.sleep(0.2)
            before = json.loads(out.read_text())
            result = run_wrk(wrk, url, request_body(1), 8, args.seconds, work)
            after = json.loads(out.read_text())
            timed_path = Path(str(out) + ".timed")
            timed_path.rename(work.parent / f"hook-ab-{os.getpid()}.timed")
            timed_path = work.parent / f"hook-ab-{os.getpid()}.timed"
        finally:
            stop(server)
            stop(sidecar)
    report(args.model, result["rps"], before, after)
    offers, calls = json.loads(timed_path.read_text())
    from statistics import mean, median

    print(f"  offer timed in place: median {median(offers) / 1e3:.2f} us, mean "
          f"{mean(offers) / 1e3:.2f} us; a no-op sink the same way: median "
          f"{median(calls) / 1e3:.2f} us, mean {mean(calls) / 1e3:.2f} us")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
