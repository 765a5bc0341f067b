"""Event delivery figures: throughput and latency to a local CloudEvents sink, enqueue cost
while the sink is down, and memory with 10,000 undelivered events queued.

The sink is the process tests' receiver (tests/process/outbox/outbox_receiver.py: Python's threading
HTTP server parsing every request with the `cloudevents` SDK) on loopback, so the figures are
those of a modest real receiver, not of the engine alone. Phases:

  burst       N events enqueued at once, delivered with concurrency C: events/s
  paced       events enqueued at a fixed rate: enqueue -> accepted latency p50/p99
  enqueue     cost of one enqueue call (one event, one fsync'd commit) for a sink that is
              down, alone and while the engine retries 2,000 events for it: p50/p99 (what a
              Kopf handler pays)
  memory      RSS of a delivering process (tests/process/outbox/outbox_deliverer.py) on an empty
              outbox vs one holding 10,000 events for a sink that is down (enqueued by an
              earlier process), and the outbox file size

Usage: python bench/events/run.py [--events 5000] [--rate 200] [--concurrency 4] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "process" / "outbox"))

from outbox_deliverer import event  # noqa: E402
from outbox_harness import Deliverer, Receiver  # noqa: E402

from mlkube.devcluster.procs import free_port  # noqa: E402
from mlkube.outbox.codec import to_outbox  # noqa: E402
from mlkube.outbox.engine import Delivery  # noqa: E402
from mlkube.outbox.model import Occurrence, SinkConfig, Target  # noqa: E402
from mlkube.outbox.store import Outbox  # noqa: E402
from mlkube.outbox.transport import sink_policy  # noqa: E402

T = TypeVar("T")
BASE = {"burst": 0, "paced": 1_000_000, "down": 2_000_000, "cost": 3_000_000}
SENT: dict[str, float] = {}  # event id -> enqueue time (the bench and receiver share a clock)


def occurrence(run: str, i: int) -> Occurrence:
    """A real catalogue event (model.verified), encoded binary as the operator sends it."""
    occ = to_outbox(event(BASE[run] + i))
    SENT[occ.id] = time.time()
    return occ


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def with_engine(
    db: Path, url: str, concurrency: int, body: Callable[[Delivery], Awaitable[T]]
) -> T:
    outbox = Outbox(db)
    engine = Delivery(outbox, policy=sink_policy(allow_loopback=True))
    engine.set_sink(SinkConfig("bench", Target(url), concurrency=concurrency, backoff_delay=0.2))
    await engine.start()
    try:
        return await body(engine)
    finally:
        await engine.stop()
        outbox.close()


def burst(tmp: Path, receiver: Receiver, n: int, concurrency: int) -> float:
    async def body(engine: Delivery) -> float:
        start = time.perf_counter()
        engine.enqueue([occurrence("burst", i) for i in range(n)], ["bench"])
        while len(await asyncio.to_thread(receiver.ids)) < n:
            await asyncio.sleep(0.05)
        return n / (time.perf_counter() - start)

    return asyncio.run(with_engine(tmp / "burst.db", receiver.url, concurrency, body))


def paced(tmp: Path, receiver: Receiver, n: int, rate: float, concurrency: int) -> list[float]:
    async def body(engine: Delivery) -> None:
        def produce() -> None:  # a handler thread, as Kopf runs sync handlers
            for i in range(n):
                engine.enqueue([occurrence("paced", i)], ["bench"])
                time.sleep(1 / rate)

        await asyncio.to_thread(produce)
        while len(await asyncio.to_thread(receiver.ids)) < n:
            await asyncio.sleep(0.05)

    asyncio.run(with_engine(tmp / "paced.db", receiver.url, concurrency, body))
    return [e["at"] - SENT[e["id"]] for e in receiver.received()]


def enqueue_cost(tmp: Path, n: int, backlog: int) -> list[float]:
    down = f"http://127.0.0.1:{free_port()}/events"  # nothing listens: connection refused

    async def body(engine: Delivery) -> list[float]:
        if backlog:  # the worker keeps retrying these while we measure
            engine.enqueue([occurrence("down", i) for i in range(backlog)], ["bench"])

        def measure() -> list[float]:
            costs = []
            for i in range(n):
                occ = occurrence("cost", i)  # built outside the timing: the call alone
                start = time.perf_counter()
                engine.enqueue([occ], ["bench"])
                costs.append(time.perf_counter() - start)
            return costs

        return await asyncio.to_thread(measure)

    return asyncio.run(with_engine(tmp / f"cost-{backlog}.db", down, 4, body))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def memory(tmp: Path) -> dict[str, float]:
    """RSS of a delivering process on an outbox holding n undelivered events for a sink that is
    down (enqueued by an earlier process, as after a restart: the figure is the engine's, not
    the garbage of building 10,000 events in one go)."""
    down = f"http://127.0.0.1:{free_port()}/events"
    out: dict[str, float] = {}
    for label, n in (("empty", 0), ("10k queued", 10_000)):
        db = tmp / f"mem-{n}.db"
        Deliverer(tmp, db, down, "--enqueue", str(n), "--delay", "0.5", name=f"fill-{n}").stop()
        d = Deliverer(tmp, db, down, "--delay", "0.5", name=f"mem-{n}")
        time.sleep(4)  # a few retry rounds over the whole queue
        out[f"rss {label} (MiB)"] = rss_kib(d.proc.pid) / 1024
        out[f"pending {label}"] = d.last_state().get("pending", -1)
        d.stop()
        size = sum(p.stat().st_size for p in tmp.glob(f"mem-{n}.db*"))
        out[f"outbox file {label} (MiB)"] = size / 2**20
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--paced", type=int, default=1000)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-events-") as name:
        tmp = Path(name)
        receiver = Receiver(tmp)
        try:
            for c in sorted({1, a.concurrency}):
                receiver.stop()
                receiver = Receiver(tmp, f"receiver-{c}")
                (tmp / f"c{c}").mkdir()
                rows.append((f"burst throughput, {a.events} events, concurrency {c} (events/s)",
                             f"{burst(tmp / f'c{c}', receiver, a.events, c):.0f}"))  # fmt: skip
            receiver.stop()
            receiver = Receiver(tmp, "receiver-paced")
            lat = paced(tmp, receiver, a.paced, a.rate, a.concurrency)
            rows.append(
                (
                    f"latency enqueue -> accepted at {a.rate:g}/s, p50 (ms)",
                    f"{1000 * statistics.median(lat):.1f}",
                )
            )
            rows.append(
                (
                    f"latency enqueue -> accepted at {a.rate:g}/s, p99 (ms)",
                    f"{1000 * pct(lat, 0.99):.1f}",
                )
            )
        finally:
            receiver.stop()
        for label, backlog in (("no backlog", 0), ("2000 retrying", 2000)):
            costs = enqueue_cost(tmp, 500, backlog)
            for q in (0.5, 0.99):
                rows.append((f"enqueue call, sink down, {label}, p{q * 100:.0f} (ms)",
                             f"{1000 * pct(costs, q):.2f}"))  # fmt: skip
        for key, value in memory(tmp).items():
            rows.append((key, f"{value:.1f}" if isinstance(value, float) else str(value)))
    width = max(len(k) for k, _ in rows)
    if a.markdown:
        print("| figure | value |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v} |")
    else:
        for k, v in rows:
            print(f"{k:<{width}}  {v:>10}")


if __name__ == "__main__":
    main()
