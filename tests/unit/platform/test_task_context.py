"""Background tasks started from a handler do not keep the handler's event: a resync loop and
a coalesced pass run in the operator's context (Kopf's event queue still there, so ticks post
Events) without Kopf's cause, whose body would otherwise live as long as the loop."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import weakref

from mlkube.handlers.coalesce import Coalesced
from mlkube.handlers.periodic import Loops
from mlkube.handlers.task_context import detached

# Named as Kopf names them: the per-event cause, and the operator-wide event queue.
cause_var: contextvars.ContextVar[object] = contextvars.ContextVar("cause_var")
queue_var: contextvars.ContextVar[str] = contextvars.ContextVar("event_queue_var")
log = logging.getLogger("test")


class Body(dict[str, object]):
    """A stand-in for an event's body (weak-referenceable)."""


def seen_in_thread() -> tuple[str, str]:
    return queue_var.get("unset"), type(cause_var.get(None)).__name__


def test_detached_drops_the_cause_and_keeps_the_rest() -> None:
    def handler() -> contextvars.Context:
        queue_var.set("queue")
        cause_var.set(Body())
        return detached()

    ctx = contextvars.Context().run(handler)
    assert ctx.run(seen_in_thread) == ("queue", "NoneType")
    plain = contextvars.Context().run(lambda: (queue_var.set("q"), detached())[1])
    assert plain.run(seen_in_thread) == ("q", "NoneType")


def test_a_loop_started_by_a_handler_does_not_keep_its_body() -> None:
    seen: list[tuple[str, str]] = []
    release = asyncio.Event()

    def tick() -> float | None:
        seen.append(seen_in_thread())
        return 0.001 if not release.is_set() else None

    async def scenario() -> None:
        loops = Loops()
        queue_var.set("queue")

        def handler() -> weakref.ref[Body]:
            body = Body(big="x" * 10_000)
            cause_var.set(body)
            loops.ensure("uid-1", "resync", tick, 0.0, log)
            return weakref.ref(body)

        ref = contextvars.copy_context().run(handler)
        while len(seen) < 3:
            await asyncio.sleep(0.005)
        gc.collect()
        assert ref() is None, "the running loop keeps the starting event's body"
        assert loops.running("uid-1") == {"resync"}
        release.set()
        await loops.close()

    asyncio.run(scenario())
    assert seen[0] == ("queue", "NoneType")


def test_a_waiting_coalesced_pass_does_not_keep_the_requesting_body() -> None:
    runs: list[tuple[str, str]] = []
    passes: Coalesced[str] = Coalesced(
        "test", lambda key, since: runs.append(seen_in_thread()), 0.05, lambda k, e: None
    )

    async def scenario() -> None:
        queue_var.set("queue")

        def handler() -> weakref.ref[Body]:
            body = Body(big="x" * 10_000)
            cause_var.set(body)
            passes.request("ns/ep")
            return weakref.ref(body)

        ref = contextvars.copy_context().run(handler)
        gc.collect()
        assert passes.pending() == 1  # still waiting its delay
        assert ref() is None, "the waiting pass keeps the requesting event's body"
        await passes.drain()

    asyncio.run(scenario())
    assert runs == [("queue", "NoneType")]


def test_a_delayed_request_from_a_handler_thread_does_not_keep_its_body() -> None:
    """`request_later` from a sync handler's thread: its timer (minutes, for a backstop) must
    not keep the handler's event."""
    passes: Coalesced[str] = Coalesced("test", lambda key, since: None, 0.0, lambda k, e: None)

    async def scenario() -> None:
        queue_var.set("queue")
        passes.bind(asyncio.get_running_loop())

        def handler() -> weakref.ref[Body]:  # as Kopf runs a sync handler: in a thread
            body = Body(big="x" * 10_000)
            cause_var.set(body)
            passes.request_later("ns/ep", 60.0, lambda key: True)
            return weakref.ref(body)

        ref = await asyncio.to_thread(contextvars.copy_context().run, handler)
        await asyncio.sleep(0.05)  # the timer is armed
        gc.collect()
        assert passes._timers, "the timer was not armed"
        assert ref() is None, "the armed timer keeps the requesting event's body"
        await passes.close()

    asyncio.run(scenario())


def test_the_dropped_variables_are_kopfs() -> None:
    """PER_EVENT names Kopf's per-handler variables: a Kopf upgrade that renames one fails
    here, not silently in the operator's memory."""
    import contextvars as cv

    from kopf._core.actions import execution
    from kopf._core.reactor import subhandling

    from mlkube.handlers.task_context import PER_EVENT

    names = {
        v.name for m in (execution, subhandling) for v in vars(m).values()
        if isinstance(v, cv.ContextVar)
    }  # fmt: skip
    assert names >= PER_EVENT
