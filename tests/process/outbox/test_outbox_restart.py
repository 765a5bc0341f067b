"""At least once across a crash: the delivering process is SIGKILLed with events pending (some
in flight) and a new process on the same outbox delivers every one of them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from outbox_deliverer import event_ids
from outbox_harness import wait_until


def test_sigkill_with_pending_events_then_a_new_process_delivers_them_all(procs: Any) -> None:
    receiver = procs.receiver()
    receiver.control(mode="slow", delay=0.05)
    first = procs.deliverer(receiver.url, "--enqueue", "300", "--concurrency", "4")
    wait_until(lambda: len(receiver.ids()) >= 40, 30, "some delivered")
    first.kill()
    before = receiver.ids()
    assert 40 <= len(before) < 300  # the kill left events pending
    receiver.control(mode="ok")
    second = procs.deliverer(receiver.url, name="second")
    wait_until(lambda: len(receiver.ids()) >= 300, 30, "all 300 delivered")
    ids = [event["id"] for event in receiver.received()]
    assert set(ids) == event_ids(300)
    # Duplicates only for sends whose outcome the kill kept from the disk (a bounded few).
    duplicates = sum(n - 1 for n in Counter(ids).values())
    assert duplicates <= 256 + 4
    wait_until(lambda: second.last_state().get("pending") == 0, 10, "outbox empty")


def test_sigkill_right_after_enqueue_loses_nothing(procs: Any) -> None:
    receiver = procs.receiver()
    receiver.control(mode="fail", status=503)  # nothing can be delivered before the kill
    first = procs.deliverer(receiver.url, "--enqueue", "50", "--delay", "5")
    first.kill()
    receiver.control(mode="ok")
    procs.deliverer(receiver.url, "--delay", "0.01", name="second")
    # Rows that failed before the kill wait out their backoff (5 s * 2): the rest go at once.
    wait_until(lambda: len(receiver.ids()) >= 50, 30, "all 50 delivered")
    assert receiver.ids() == event_ids(50)
