"""The drift hook's cost inside one real model server process, switched on and off in place.

serving_overhead.py's first view compares separate server processes; on a shared machine their
CPU per request differs by a few percent for reasons that have nothing to do with the hook.
Here one real server (`mlkube_serving serve`: uvicorn, uvloop, httptools, 1 worker) serves
wrk's load while a timer thread in it switches the dataplane's sample sink every `phase`
seconds: no hook, the hook at the default rate, the hook at 100%, and the hook at 100% with
each `offer` timed in place (diagnostic only). Every cycle of phases shares the machine's
state of that moment, so the per-cycle differences are the hook's; the losses are medians over
cycles. The switching thread sleeps between switches (a few wake-ups a second).

Samples go through the shared-memory spool as in a pod (`--http`: over HTTP, the fallback).
Usage: python bench/drift/hook_ab.py [--model rf|lr] [--seconds 30] [--phase 0.1] [--probes]
       [--http]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

# Phase labels: the server's three configurations, a second no-hook phase (the A/A pair says
# what difference the run can resolve), then the diagnostic one.
LABELS = ["off", "off2", "default", "100%", "timed"]
Phase = tuple[str, float, int]  # (label, CPU seconds, requests)
# The spool's memory-backed directory, as the pod's emptyDir {medium: Memory} (tmpfs).
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None


def spool_args(spool: str | None) -> list[str]:
    """The sidecar's flags for a spool directory (none: samples over HTTP)."""
    interval = os.environ.get("MLKUBE_BENCH_SPOOL_INTERVAL", "0.1")
    return [] if spool is None else ["--spool-dir", spool, "--spool-interval", interval]


def serve(settings_json: str, phase: float, out: str, labels: list[str]) -> None:
    """The server process: `serve` as the image runs it, plus the sink-switching thread."""
    from mlkube_serving import dataplane, server
    from mlkube_serving.drift_hook import DriftHook
    from mlkube_serving.settings import Settings

    planes: list[Any] = []
    served = [0]
    role = ""
    if labels[0].startswith("role="):  # crossover.py: "role=A:default,100%,off2[,probes]"
        role, _, measured = ",".join(labels).removeprefix("role=").partition(":")
        labels = ["off", *measured.split(",")]
    infer, init = dataplane.DataPlane.infer_entry, dataplane.DataPlane.__init__

    def counted(self: Any, entry: Any, request: Any) -> Any:
        served[0] += 1  # the same cost in every phase
        return infer(self, entry, request)

    def keep(self: Any, sink: Any = None) -> None:
        init(self, sink)
        planes.append(self)

    packed = [0, 0]  # ns in the sender's join of the lane (ByteLane.body), samples joined
    try:
        from mlkube_serving.drift_lane import ByteLane

        join = ByteLane.body

        def timed_body(self: Any, columns: Any, taken: Any) -> Any:
            t0 = time.perf_counter_ns()
            body = join(self, columns, taken)
            packed[0] += time.perf_counter_ns() - t0
            packed[1] += len(taken)
            return body

        ByteLane.body = timed_body  # type: ignore[method-assign]
    except ImportError:  # another checkout's hook (PYTHONPATH), before the byte lane
        pass
    flushes: list[tuple[float, int, int, int]] = []  # (rate, CPU ns, held, not delivered)
    flush = DriftHook.flush

    async def timed_flush(self: Any, seal: bool = True) -> bool:
        """The sender's whole flush, timed on the loop's thread (the spool's put does not
        yield, so its thread time is the flush's own CPU). A flush that did not deliver
        (the ring full: the sidecar behind) is recorded too: the bench must say so."""
        held = self.pending()
        c0 = time.thread_time_ns()
        ok = await flush(self, seal)
        if held:
            rate = getattr(self, "sample_rate", self.rate)  # a gated hook's rate is 1
            flushes.append((rate, time.thread_time_ns() - c0, held, 0 if ok else 1))
            if len(flushes) % 20 == 0:
                Path(out + ".flushes.tmp").write_text(json.dumps(flushes))
                os.replace(out + ".flushes.tmp", out + ".flushes")
        return ok

    DriftHook.flush = timed_flush  # type: ignore[method-assign]
    dataplane.DataPlane.infer_entry = counted  # type: ignore[method-assign]
    dataplane.DataPlane.__init__ = keep  # type: ignore[method-assign]
    try:  # one-row bodies take the plain V2 shortcut, which never calls infer_entry
        from mlkube_serving import app as serving_app

        plain = getattr(serving_app, "infer_plain")  # noqa: B009 (patched below)

        def counted_plain(*args: Any) -> Any:
            reply = plain(*args)
            if reply is not None:
                served[0] += 1
            return reply

        setattr(serving_app, "infer_plain", counted_plain)  # noqa: B010 (a patch for the bench)
    except (ImportError, AttributeError):  # another checkout's server, before the shortcut
        pass

    class Timed:
        """The 100% hook with each offer timed (perf_counter_ns; the median ignores preemption)."""

        def __init__(self, inner: Any) -> None:
            self.inner, self.times = inner, [0] * 200_000
            self.n = 0
            self.rate, self.coin = 1.0, random.random
            self.bodies = None  # the shortcut then offers its samples by rows (timed)

        def offer(self, *args: Any) -> None:
            t0 = time.perf_counter_ns()
            self.inner.offer(*args)
            self._took(t0)

        def offer_rows(self, *args: Any) -> None:  # the plain shortcut's offer
            t0 = time.perf_counter_ns()
            self.inner.offer_rows(*args)
            self._took(t0)

        def _took(self, t0: int) -> None:
            if self.n < len(self.times):
                self.times[self.n] = time.perf_counter_ns() - t0
                self.n += 1

    def switcher() -> None:
        while not planes or getattr(planes[0].sink, "_task", None) is None:
            time.sleep(0.1)  # the hook starts with the model
        plane = planes[0]
        full: DriftHook = plane.sink
        kind = type(full)  # DriftHook, or SpoolHook when the server writes a spool
        default = own_hook(full, settings, Settings().drift_sample_rate)
        timed = Timed(full)
        sinks = {"off": None, "default": default, "100%": full, "timed": timed}
        if "zero" in labels:  # the coin and nothing else: what switching sinks costs by itself
            zero = kind.__new__(kind)
            zero.__dict__.update(full.__dict__)
            zero.rate = zero._rate = 0.0
            sinks["zero"] = zero
        if "unsent" in labels:
            unsent = DriftHook(f"http://{full._host}:{full._port}", 1.0)  # all but the POST

            async def posted(body: bytes, head: bytes) -> bool:
                return True

            unsent._post = posted  # type: ignore[method-assign]
            full._loop.call_soon_threadsafe(unsent.start)
            sinks["unsent"] = unsent
        if "coin" in labels:  # the default rate by a coin per request (before the gate)
            sinks["coin"] = own_hook(full, settings, default.rate, gated=False)
        sinks["off2"] = None  # a second no-hook phase: the A/A difference is the resolution
        from hook_probes import PROBES, probe_sinks

        if set(labels) & set(PROBES):  # the default rate's cost taken apart (hook_probes.py)
            sinks.update(probe_sinks(full, default.rate))
        from crossover import deliver, run_role, start_phase

        if role:  # one of crossover.py's pair of servers
            run_role(plane, sinks, served, role, labels, phase, out)
        phases: list[Phase] = []
        order = random.Random(16)
        while True:
            # Each cycle in its own random order: a phase's position (after the 100% phases'
            # flushes, first after "off") must not bias one configuration.
            for label in order.sample(labels, len(labels)):
                sink = sinks[label]
                start_phase(plane, sink, full._loop)
                n0, c0 = served[0], time.process_time()
                time.sleep(phase)
                # every phase the same round trip through the loop (a gate is closed in it;
                # the hooks' senders flush on their own period, as before)
                deliver(sink, full._loop, flush=False)
                phases.append((label, time.process_time() - c0, served[0] - n0))
            # a whole cycle written at once: measure() groups phases by cycle
            offers = sorted(timed.times[: timed.n])
            report = {
                "phases": phases,
                "offer_ns": offers[::10],
                "pack_ns": packed[0] / max(1, packed[1]),
            }
            Path(out + ".tmp").write_text(json.dumps(report))
            os.replace(out + ".tmp", out)  # measure() reads it at any moment: never half written

    settings = Settings(**json.loads(settings_json))
    threading.Thread(target=switcher, daemon=True).start()
    server.run(settings)


def own_hook(full: Any, settings: Any, rate: float, gated: bool = True) -> Any:
    """A second hook at `rate` next to the server's `full` one, as the server would build it,
    with its own lane, sender (and ring): sharing the 100% hook's lane, a phase at the default
    rate completed (and paid the flush of) the lane the 100% phases had filled. Below 100% the
    server samples through a `SampleGate` (drift_gate.py), returned instead of the hook: the
    switching thread attaches and detaches it (crossover.start_phase). `gated=False`: the hook
    flipping a coin per request, as before the gate (the "coin" sink)."""
    gate = None
    replaced = dataclasses.replace(settings, drift_sample_rate=rate)
    try:
        from mlkube_serving.worker import make_drift_sampling

        hook, gate = make_drift_sampling(replaced)
        if not gated and gate is not None:
            hook.rate, gate = hook.sample_rate, None
    except ImportError:  # a hook from before the gate (PYTHONPATH=<old checkout>)
        try:
            from mlkube_serving.worker import make_drift_hook
        except ImportError:  # a hook from before the worker built it
            kind = type(full)
            default = kind.__new__(kind)  # the same hook and sender, sampling less
            default.__dict__.update(full.__dict__)
            # `_rate`: a hook from before the dataplane flipped the coin
            default.rate = default._rate = rate
            return default
        hook = make_drift_hook(replaced)
    full._loop.call_soon_threadsafe(hook.start)
    while getattr(hook, "_task", None) is None:
        time.sleep(0.01)
    return hook if gate is None else gate


def launch(
    model_dir: Path,
    drift_url: str,
    spool_dir: str | None,
    phase: float,
    out: Path,
    spec: str,
    pin: list[str],
) -> tuple[subprocess.Popen[bytes], str]:
    """A switched server (`--serve`: the hook at 100%, its sinks switched by `spec`'s rules);
    (process, base URL). Its output goes to `out` with ".log"."""
    from run import free_port

    port, metrics_port = free_port(), free_port()
    settings = {"model_dir": str(model_dir), "model_name": "m", "http_port": port,
                "metrics_port": metrics_port, "host": "127.0.0.1", "workers": 1,
                "drift_url": drift_url, "drift_sample_rate": 1.0,
                "drift_spool_dir": spool_dir}  # fmt: skip
    with open(out.with_suffix(".log"), "wb") as log:
        process = subprocess.Popen([*pin, sys.executable, __file__, "--serve",
                                    json.dumps(settings), str(phase), str(out), spec],
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def measure(
    model_dir: Path,
    drift_url: str,
    wrk: str,
    seconds: float,
    phase: float,
    workdir: Path,
    pin: list[str],
    labels: list[str] = LABELS,
    spool_dir: str | None = None,
) -> dict[str, Any]:
    """Run the toggled server under wrk for `seconds`; per label the per-cycle CPU/request."""
    from run import request_body, run_wrk, stop, wait_ready

    out = workdir / f"toggled-{model_dir.name}.json"
    process, base = launch(model_dir, drift_url, spool_dir, phase, out, ",".join(labels), pin)
    try:
        wait_ready(f"{base}/v2/health/ready", process)
        url = f"{base}/v2/models/m/infer"
        run_wrk(wrk, url, request_body(1), 8, 2.0, workdir)  # warm-up
        while not out.exists():
            time.sleep(0.2)
        skip = len(json.loads(out.read_text())["phases"])
        result = run_wrk(wrk, url, request_body(1), 8, seconds, workdir)
        data = json.loads(out.read_text())
    finally:
        stop(process)
    phases = data["phases"][skip:]
    cycles = [phases[i : i + len(labels)] for i in range(0, len(phases), len(labels))]
    us: dict[str, list[float]] = {label: [] for label in labels}
    for cycle in cycles:
        if len(cycle) == len(labels) and all(n for _, _, n in cycle):
            for label, cpu, n in cycle:
                us[label].append(1e6 * cpu / n)
    return {
        "rps": result["rps"],
        "us": us,
        "offer_ns": data["offer_ns"],
        "pack_ns": data["pack_ns"],
    }


def summary(us: dict[str, list[float]], label: str) -> tuple[float, float, float, float]:
    """(median CPU us/request, median extra us, median capacity loss %, spread as the
    interquartile range of the per-cycle losses)."""
    off = us["off"]
    extra = [u - o for u, o in zip(us[label], off, strict=True)]
    loss = sorted(100 * (1 - o / u) for u, o in zip(us[label], off, strict=True))
    iqr = loss[3 * len(loss) // 4] - loss[len(loss) // 4] if len(loss) >= 4 else float("nan")
    return median(us[label]), median(extra), median(loss), iqr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="rf")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--phase", type=float, default=0.1)
    parser.add_argument(
        "--unsent",
        action="store_true",
        help="add a phase with a hook that does everything but the POST",
    )
    parser.add_argument(
        "--zero",
        action="store_true",
        help="add a phase with the hook at rate 0 (the cost of switching)",
    )
    parser.add_argument(
        "--probes",
        action="store_true",
        help="add diagnostic sinks at the default rate (call, hold, copy, own: hook_probes.py)",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="samples over HTTP (no spool), as before issue 16's fifth pass",
    )
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], float(args.serve[1]), args.serve[2], args.serve[3].split(","))
        return 0
    import numpy as np
    import pandas as pd
    from hook_probes import PROBES
    from run import build_models, ensure_wrk, free_port, stop, wait_ready

    from mlkube_serving.drift.profile import build_profile, write_profile

    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="mlkube-hook-ab-") as tmp:
        work = Path(tmp)
        models = build_models(work)
        x = np.random.default_rng(1).normal(size=(5000, 20))
        write_profile(build_profile(pd.DataFrame(x, columns=[f"x{i}" for i in range(20)]),
                                    window_size=1000), work / "profile.json")  # fmt: skip
        side, side_metrics = free_port(), free_port()
        spool = None if args.http else tempfile.mkdtemp(prefix="mlkube-spool-", dir=SHM)
        sidecar = subprocess.Popen([sys.executable, "-m", "mlkube_serving", "drift-sidecar",
                                    "--profile", str(work / "profile.json"), "--host",
                                    "127.0.0.1", "--port", str(side), "--metrics-port",
                                    str(side_metrics), *spool_args(spool)],
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{side}/v1/summary", sidecar)
            labels = ["off", "zero", *LABELS[1:]] if args.zero else list(LABELS)
            labels += ["unsent"] if args.unsent else []
            labels += PROBES if args.probes else []
            # the server on core 0 as serving_overhead.py pins it (wrk and the sidecar float)
            pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
            got = measure(models[args.model], f"http://127.0.0.1:{side}", wrk, args.seconds,
                          args.phase, work, pin, labels, spool)  # fmt: skip
        finally:
            stop(sidecar)
            if spool:
                shutil.rmtree(spool, ignore_errors=True)
    path = "HTTP" if args.http else "spool"
    print(f"{args.model} ({path}): {got['rps']:.0f} req/s, {len(got['us']['off'])} cycles, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for label in list(got["us"])[1:]:
        cpu, extra, loss, iqr = summary(got["us"], label)
        print(f"  {label:8} {cpu:6.2f} us/request, {extra:+5.2f} us, capacity loss {loss:5.1f}% "
              f"(IQR {iqr:.1f} points)")  # fmt: skip
    offers = got["offer_ns"] or [0]
    print(f"  offer() timed in place: median {median(offers) / 1e3:.2f} us; the sender's "
          f"join: {got['pack_ns'] / 1e3:.2f} us per sample")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
