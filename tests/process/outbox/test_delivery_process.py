"""Delivery to a real CloudEvents receiver (the `cloudevents` SDK parses every request) that
fails, throttles, answers 410 or is slow: nothing lost, each event once per id, Retry-After
honoured for the whole sink, 410 stops the sink until its spec changes, the dead letter sink
gets what was given up, signatures verify."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from outbox_deliverer import event_id, event_ids
from outbox_harness import wait_until


def _all_delivered(receiver: Any, n: int, timeout: float = 30) -> list[dict[str, Any]]:
    wait_until(lambda: len(receiver.ids()) >= n, timeout, f"{n} events delivered")
    return list(receiver.received())


def test_nothing_lost_through_failures_and_slow_answers(procs: Any) -> None:
    receiver = procs.receiver()
    receiver.control(mode="fail", status=503, count=40)
    deliverer = procs.deliverer(receiver.url, "--enqueue", "150", "--delay", "0.02")
    received = _all_delivered(receiver, 150)
    ids = [event["id"] for event in received]
    assert set(ids) == event_ids(150)
    assert len(ids) == len(set(ids))  # no crash, no lost acknowledgement: each exactly once
    assert sum(receiver.attempts().values()) == 150 + 40  # the failed ones were retried
    assert {event["type"] for event in received} == {"dev.mlkube.model.verified.v1"}
    wait_until(lambda: deliverer.last_state().get("delivered") == 150, 5, "state delivered=150")
    state = deliverer.last_state()
    assert state["pending"] == 0 and state["failed"] == 0
    assert state["last_failure"]["status"] == 503


def test_a_slow_receiver_times_out_and_is_retried(procs: Any) -> None:
    receiver = procs.receiver()
    receiver.control(mode="slow", delay=1.5, count=2)
    procs.deliverer(receiver.url, "--enqueue", "10", "--timeout", "0.3", "--delay", "0.05",
                    "--concurrency", "1")  # fmt: skip
    received = _all_delivered(receiver, 10)
    assert {event["id"] for event in received} == event_ids(10)
    attempts = receiver.attempts()
    assert attempts[event_id(0)] >= 2  # timed out twice... at least once, then accepted


def _throttle_window(procs: Any, retry_after: Callable[[], str], pause: float) -> None:
    receiver = procs.receiver()
    # The value is made after the receiver started and after `start`: an HTTP date is an
    # absolute time, and a slow receiver start used to eat into the window (1.58 s of 2).
    start = time.time()
    receiver.control(mode="throttle", retry_after=retry_after(), count=1)
    procs.deliverer(receiver.url, "--enqueue", "5", "--concurrency", "1", "--delay", "0.01")
    received = _all_delivered(receiver, 5)
    first = min(event["at"] for event in received)
    # Nothing was accepted before the pause ended, although the backoff (0.02 s) is shorter.
    assert first - start >= pause - 0.3
    assert first - start < pause + 5
    assert sum(receiver.attempts().values()) == 6  # one 429, then each event once


def test_retry_after_seconds_pauses_the_whole_sink(procs: Any) -> None:
    _throttle_window(procs, lambda: "2", 2.0)


def test_retry_after_http_date_pauses_the_whole_sink(procs: Any) -> None:
    # Whole seconds: now + 3 truncated is at least 2 s after `start`.
    _throttle_window(procs, lambda: formatdate(time.time() + 3, usegmt=True), 2.0)


def test_gone_stops_the_sink_until_its_spec_changes(procs: Any) -> None:
    receiver = procs.receiver()
    receiver.control(mode="gone")
    first = procs.deliverer(receiver.url, "--enqueue", "10", "--concurrency", "1")
    wait_until(lambda: first.last_state().get("gone") is True, 10, "sink gone")
    time.sleep(1.0)
    assert sum(receiver.attempts().values()) == 1  # stopped after the first 410
    state = first.last_state()
    assert state["pending"] == 10 and state["failed"] == 0
    first.stop()
    # A restart with the same spec stays stopped; the 410 is on disk.
    same = procs.deliverer(receiver.url, "--concurrency", "1", name="same")
    time.sleep(1.0)
    assert same.last_state()["gone"] is True
    assert sum(receiver.attempts().values()) == 1
    same.stop()
    receiver.control(mode="ok")
    changed = procs.deliverer(receiver.url, "--fingerprint", "v2", name="changed")
    received = _all_delivered(receiver, 10)
    assert {event["id"] for event in received} == event_ids(10)
    wait_until(lambda: changed.last_state().get("gone") is False, 5, "gone cleared")


def test_dead_letter_sink_gets_events_that_exhausted_their_retries(procs: Any) -> None:
    sink, dead = procs.receiver("sink"), procs.receiver("dead-letter")
    sink.control(mode="fail", status=500)
    deliverer = procs.deliverer(sink.url, "--enqueue", "6", "--retry", "2", "--delay", "0.01",
                                "--dead-letter", dead.url)  # fmt: skip
    received = _all_delivered(dead, 6)
    assert {event["id"] for event in received} == event_ids(6)
    assert {event["dead_letter"] for event in received} == {"test/sink"}
    assert sink.attempts() == dict.fromkeys(event_ids(6), 3)  # the first + 2 retries
    assert sink.received() == []
    # failed counts the move to the dead letter sink; pending drops once that send is recorded
    wait_until(lambda: deliverer.last_state().get("pending") == 0, 5, "pending=0")
    assert deliverer.last_state()["failed"] == 6


def test_rejected_events_go_to_the_dead_letter_sink_at_once(procs: Any) -> None:
    sink, dead = procs.receiver("sink"), procs.receiver("dead-letter")
    sink.control(mode="fail", status=400, count=3)
    procs.deliverer(sink.url, "--enqueue", "8", "--dead-letter", dead.url, "--concurrency", "1")
    wait_until(lambda: len(dead.ids()) + len(sink.ids()) >= 8, 20, "8 events somewhere")
    assert len(dead.ids()) == 3 and dead.ids().isdisjoint(sink.ids())
    assert all(n == 1 for n in sink.attempts().values())  # a 400 is not retried


def test_events_without_retries_left_and_no_dead_letter_are_dropped_and_counted(
    procs: Any,
) -> None:
    receiver = procs.receiver()
    receiver.control(mode="fail", status=500)
    deliverer = procs.deliverer(receiver.url, "--enqueue", "4", "--retry", "1", "--delay", "0.01")
    wait_until(lambda: deliverer.last_state().get("failed") == 4, 10, "failed=4")
    assert deliverer.last_state()["pending"] == 0
    assert Counter(receiver.attempts().values()) == {2: 4}


def test_signed_deliveries_verify_at_the_receiver(procs: Any) -> None:
    receiver = procs.receiver(key="s3cret")
    procs.deliverer(receiver.url, "--enqueue", "5", "--key", "s3cret")
    received = _all_delivered(receiver, 5)
    assert [event["signed"] for event in received] == [True] * 5
    wrong = procs.receiver("wrong", key="other")
    procs.deliverer(wrong.url, "--enqueue", "2", "--key", "s3cret", name="wrong-key",
                    db="other.db")  # fmt: skip
    assert [event["signed"] for event in _all_delivered(wrong, 2)] == [False] * 2


def test_binary_and_structured_modes_parse_with_the_sdk(procs: Any) -> None:
    for mode in ("binary", "structured"):
        receiver = procs.receiver(f"receiver-{mode}")
        procs.deliverer(receiver.url, "--enqueue", "3", "--mode", mode, name=mode, db=f"{mode}.db")
        received = _all_delivered(receiver, 3)
        assert {event["mode"] for event in received} == {mode}
        by_id = {event["id"]: event for event in received}
        first = by_id[event_id(0)]
        assert first["subject"] == "Model/team-a/m-0"
        assert first["data"]["digest"] == f"sha256:{0:064x}"
