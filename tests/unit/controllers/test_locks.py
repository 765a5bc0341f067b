"""Per-object locks: the same object is serialized, others are not, unused ones go."""

from __future__ import annotations

import threading

from mlkube.controllers.locks import KeyedLocks


def test_one_object_at_a_time_others_in_parallel() -> None:
    locks = KeyedLocks()
    inside = threading.Event()
    release = threading.Event()

    def hold_credit() -> None:
        with locks.hold("ml", "credit"):
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=hold_credit)
    worker.start()
    assert inside.wait(5)
    with locks.hold("ml", "fraud"):  # another endpoint is not blocked
        pass
    entered = threading.Event()

    def wait_for_credit() -> None:
        with locks.hold("ml", "credit"):
            entered.set()

    blocked = threading.Thread(target=wait_for_credit)
    blocked.start()
    assert not entered.wait(0.2)  # the same endpoint waits
    release.set()
    worker.join(5)
    blocked.join(5)
    assert entered.is_set()
    assert len(locks) == 0  # nobody holds or waits: no entry left behind


def test_no_leak_after_deletion_events() -> None:
    """Events for a deleted endpoint (e.g. its pruned Deployments) leave no entry behind."""
    locks = KeyedLocks()
    for _ in range(3):
        with locks.hold("ml", "gone"):
            pass
    assert len(locks) == 0


def test_a_waiter_keeps_the_lock_it_waits_on() -> None:
    """While one pass holds the lock and another waits, a third must still be excluded:
    the entry is never dropped while in use (a forget used to allow two passes at once)."""
    locks = KeyedLocks()
    active = 0
    most = 0
    counter_guard = threading.Lock()
    start = threading.Barrier(4)

    def pass_() -> None:
        nonlocal active, most
        start.wait(5)
        with locks.hold("ml", "credit"):
            with counter_guard:
                active += 1
                most = max(most, active)
            threading.Event().wait(0.05)
            with counter_guard:
                active -= 1

    threads = [threading.Thread(target=pass_) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert most == 1
    assert len(locks) == 0
