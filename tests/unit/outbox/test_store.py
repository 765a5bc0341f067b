"""The SQLite outbox: idempotent enqueue, the replay window, the bound, seen-id pruning,
settling outcomes, durability across reopen."""

from __future__ import annotations

import time
from pathlib import Path

from mlkube.outbox.metrics import FAILED
from mlkube.outbox.model import Occurrence
from mlkube.outbox.records import SinkDelta
from mlkube.outbox.schema import DEAD_LETTER
from mlkube.outbox.store import Outbox


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def occ(i: int, at: float, uid: str = "u1") -> Occurrence:
    return Occurrence(f"e{i}", "dev.mlkube.model.registered.v1", at, uid, b'{"n": %d}' % i)


def test_enqueue_is_idempotent_by_id(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    first = box.enqueue([occ(1, clock.now), occ(2, clock.now)], ["a", "b"])
    again = box.enqueue([occ(1, clock.now), occ(2, clock.now), occ(3, clock.now)], ["a"])
    assert (first.new, again.new) == (2, 1)
    assert box.pending() == {"a": 3, "b": 2}


def test_chooser_routes_per_occurrence_and_unwanted_is_only_seen(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    result = box.enqueue(
        [occ(1, clock.now), occ(2, clock.now)], lambda o: ["a"] if o.id == "e1" else []
    )
    assert (result.new, result.seen_only) == (1, 1)
    assert box.enqueue([occ(2, clock.now)], ["a"]).new == 0  # already seen: never sent later
    assert box.pending() == {"a": 1}


def test_fresh_outbox_marks_history_seen_without_sending(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock, replay_window=600)
    assert box.fresh
    old, recent = occ(1, clock.now - 601), occ(2, clock.now - 599)
    result = box.enqueue([old, recent], ["a"])
    assert (result.new, result.seen_only) == (1, 1)
    box.close()
    clock.now += 3600  # the rule stays anchored to the outbox's creation, not to the restart
    reopened = Outbox(tmp_path / "o.db", clock=clock, replay_window=600)
    assert not reopened.fresh
    assert reopened.enqueue([occ(3, clock.now - 1200)], ["a"]).new == 1


def test_pending_rows_survive_reopen(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    box.enqueue([occ(i, clock.now) for i in range(5)], ["a"])
    del box  # no close: as after a kill, the committed rows are what counts
    again = Outbox(tmp_path / "o.db", clock=clock)
    rows = again.due("a", clock.now, 256, set())
    assert [r.event.id for r in rows] == [f"e{i}" for i in range(5)]
    assert rows[0].event.payload == b'{"n": 0}'


def test_bound_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock, max_events=10)
    before = FAILED.labels("a", "overflow")._value.get()
    result = box.enqueue([occ(i, clock.now) for i in range(15)], ["a"])
    assert result.overflow_dropped == 5
    assert box.pending() == {"a": 10}
    assert next(r.event.id for r in box.due("a", clock.now, 256, set())) == "e5"
    assert FAILED.labels("a", "overflow")._value.get() - before == 5


def test_due_loads_at_most_the_limit_skipping_in_flight(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    box.enqueue([occ(i, clock.now) for i in range(600)], ["a"])
    first = box.due("a", clock.now, 256, set())
    assert len(first) == 256
    second = box.due("a", clock.now, 256, {r.seq for r in first})
    assert len(second) == 256 and not {r.seq for r in first} & {r.seq for r in second}


def test_settle_deletes_retries_and_dead_letters(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    box.enqueue([occ(i, clock.now) for i in range(3)], ["a"])
    r0, r1, r2 = box.due("a", clock.now, 256, set())
    box.settle(
        "a", done=[r0.seq], retry=[(r1.seq, 1, clock.now + 5)], dead_letter=[(r2.seq, clock.now)],
        delta=SinkDelta(delivered=1, failed=1, last_delivered_at=clock.now),
    )  # fmt: skip
    assert box.pending() == {"a": 2}
    due_now = box.due("a", clock.now, 256, set())
    assert [(r.event.id, r.target) for r in due_now] == [("e2", DEAD_LETTER)]
    assert box.next_due("a", clock.now) == clock.now + 5
    record = box.record("a")
    assert (record.delivered, record.failed, record.last_delivered_at) == (1, 1, clock.now)
    box.settle("a", done=[r1.seq, r2.seq, r0.seq])  # r0 again: already gone, not counted
    assert box.pending() == {}
    assert box.due("a", clock.now + 10, 256, set()) == []


def test_drop_sink(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    box.enqueue([occ(i, clock.now) for i in range(3)], ["a", "b"])
    assert box.drop_sink("a") == 3
    assert box.pending() == {"b": 3}


def test_seen_ids_pruned_only_when_no_longer_implied_after_the_grace(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    box.enqueue([occ(1, clock.now, "m"), occ(2, clock.now, "m"), occ(3, clock.now, "x")], ["a"])
    box.retain("m", ["e2"])  # e1 no longer implied by m's state
    clock.now += 100
    assert box.prune(grace=1000) == 0
    box.retain("m", ["e1", "e2"])  # implied again (e.g. a stale watch event): kept
    clock.now += 2000
    assert box.prune(grace=1000) == 0
    box.retain("m", ["e2"])
    box.forget("x")
    clock.now += 2000
    assert box.prune(grace=1000) == 2  # e1 and e3; e2 is still implied
    assert box.seen_count() == 1
    assert box.enqueue([occ(2, clock.now, "m")], ["a"]).new == 0


def test_enqueue_is_fast(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    now = time.time()
    box.enqueue([occ(0, now)], ["a"])
    start = time.perf_counter()
    for i in range(1, 101):
        box.enqueue([occ(i, now)], ["a"])
    per_call = (time.perf_counter() - start) / 100
    assert per_call < 0.02  # loose: a shared CI disk; bench/events reports the real figure
