"""Per-object locks: the same object is serialized, others are not, forgotten ones go."""

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
    blocked = threading.Thread(target=lambda: locks.hold("ml", "credit").__enter__())
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # the same endpoint waits
    release.set()
    worker.join(5)
    blocked.join(5)
    assert not blocked.is_alive()
    assert len(locks) == 2
    locks.forget("ml", "credit")
    locks.forget("ml", "fraud")
    assert len(locks) == 0
