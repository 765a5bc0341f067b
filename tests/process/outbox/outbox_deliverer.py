"""A delivering process for the process tests: an Outbox + Delivery engine on one sink,
encoding with mlkube.events (binary or structured CloudEvents) as the operator does.

`--enqueue N` enqueues N events first (model.verified of Model `m-<i>`, ids from the catalogue's
stable hash; `event_id(i)` gives them), then the engine delivers until the process is stopped
(SIGTERM: clean stop; the tests also SIGKILL it). Prints "ready" once enqueued and running, and
"state <json>" of the sink every --report seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
from datetime import UTC, datetime

from mlkube.events.catalogue import MODEL_VERIFIED
from mlkube.events.data import ModelVerified
from mlkube.events.occurrence import ObjectFacts, Occurrence
from mlkube.outbox.engine import Delivery
from mlkube.outbox.model import SinkConfig, Target
from mlkube.outbox.store import Outbox
from mlkube.outbox.transport import sink_policy

SINK = "test/sink"


def event(i: int) -> Occurrence:
    facts = ObjectFacts("Model", "models", "team-a", f"m-{i}", f"uid-{i}", 1)
    when = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    data = ModelVerified(name=f"m-{i}", version="1", digest=f"sha256:{i:064x}")
    return facts.occurrence(MODEL_VERIFIED, [data.digest], when, data)


def event_id(i: int) -> str:
    return event(i).id


def event_ids(n: int) -> set[str]:
    return {event_id(i) for i in range(n)}


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
    p.add_argument("--mode", default="binary")
    p.add_argument("--key", default="")
    p.add_argument("--fingerprint", default="v1")
    p.add_argument("--max-events", type=int, default=100_000)
    p.add_argument("--report", type=float, default=0.2)
    a = p.parse_args()
    outbox = Outbox(a.db, max_events=a.max_events)
    engine = Delivery(outbox, policy=sink_policy(allow_loopback=True))
    sink = SinkConfig(
        key=SINK, target=Target(a.url), fingerprint=a.fingerprint, mode=a.mode, retry=a.retry,
        backoff_policy=a.policy, backoff_delay=a.delay, timeout=a.timeout,
        concurrency=a.concurrency, dead_letter=Target(a.dead_letter) if a.dead_letter else None,
        signing_key=a.key.encode() or None,
    )  # fmt: skip
    engine.set_sink(sink)
    if a.enqueue:
        engine.enqueue_events((event(i) for i in range(a.enqueue)), [SINK])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await engine.start()
    print("ready", flush=True)
    while not stop.is_set():
        print("state", json.dumps(dataclasses.asdict(engine.state(SINK))), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), a.report)
    await engine.stop()
    outbox.close()


if __name__ == "__main__":
    asyncio.run(main())
