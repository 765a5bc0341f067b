"""A delivering process for the process tests: an Outbox + Delivery engine on one sink.

`--enqueue N` enqueues N test events (ids `evt-<i>`) first, then the engine delivers until the
process is stopped (SIGTERM: clean stop; the tests also SIGKILL it). Prints "ready" once
enqueued and running, and "state <json>" of the sink every --report seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import time

from mlkube.outbox.engine import Delivery, structured_passthrough
from mlkube.outbox.model import Occurrence, SinkConfig, Target
from mlkube.outbox.store import Outbox
from mlkube.outbox.transport import sink_policy


def occurrence(i: int, now: float) -> Occurrence:
    event = {"specversion": "1.0", "id": f"evt-{i}", "type": "dev.mlkube.test.v1",
             "source": "/tests/outbox", "datacontenttype": "application/json",
             "data": {"n": i}}  # fmt: skip
    return Occurrence(f"evt-{i}", "dev.mlkube.test.v1", now, f"uid-{i % 7}",
                      json.dumps(event).encode())  # fmt: skip


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--dead-letter", default="")
    p.add_argument("--enqueue", type=int, default=0)
    p.add_argument("--retry", type=int, default=10)
    p.add_argument("--delay", type=float, default=0.05)
    p.add_argument("--policy", default="exponential")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--key", default="")
    p.add_argument("--fingerprint", default="v1")
    p.add_argument("--max-events", type=int, default=100_000)
    p.add_argument("--report", type=float, default=0.2)
    a = p.parse_args()
    outbox = Outbox(a.db, max_events=a.max_events)
    engine = Delivery(
        outbox, encoder=structured_passthrough, policy=sink_policy(allow_loopback=True)
    )
    sink = SinkConfig(
        key="test/sink", target=Target(a.url), fingerprint=a.fingerprint, retry=a.retry,
        backoff_policy=a.policy, backoff_delay=a.delay, timeout=a.timeout,
        concurrency=a.concurrency, dead_letter=Target(a.dead_letter) if a.dead_letter else None,
        signing_key=a.key.encode() or None,
    )  # fmt: skip
    engine.set_sink(sink)
    now = time.time()
    if a.enqueue:
        engine.enqueue((occurrence(i, now) for i in range(a.enqueue)), ["test/sink"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await engine.start()
    print("ready", flush=True)
    while not stop.is_set():
        state = dataclasses.asdict(engine.state("test/sink"))
        print("state", json.dumps(state), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), a.report)
    await engine.stop()
    outbox.close()


if __name__ == "__main__":
    asyncio.run(main())
