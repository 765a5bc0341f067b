"""Per-object periodic work (resync, drift polls, verification polls) that needs no finalizer.

Kopf's timers and daemons put a finalizer on every object they serve, so that they can be
stopped before the object goes: with the operator stopped or uninstalled, such an object, and
the namespace holding it, can never be deleted. These loops are started and stopped from watch
events instead (`@kopf.on.event`, which needs no finalizer), and each tick re-reads its object:
a tick that finds it gone (or replaced, or being deleted) ends the loop, so a missed DELETED
event leaks nothing. A tick is a blocking function run in a thread; it returns the delay
until the next tick, or None to stop.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol, cast

import kopf

from mlkube.controllers.errors import ControllerError
from mlkube.controllers.locks import KeyedLocks
from mlkube.handlers.metrics import reconciling
from mlkube.handlers.task_context import detached
from mlkube.k8s import ApiError
from mlkube.storage import shared_fs

Tick = Callable[[], float | None]
ERROR_DELAY: Final = 10.0  # after an unexpected error in a tick
HOUSEKEEPING_SECONDS: Final = 30.0
log = logging.getLogger(__name__)


class Loops:
    """Running loops keyed by (object uid, job name); at most one per key."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def ensure(
        self, uid: str, job: str, tick: Tick, initial_delay: float, logger: logging.Logger | Any
    ) -> bool:
        """Start the loop unless one runs already (in this event loop: tests restart Kopf);
        True when it started one."""
        key = (uid, job)
        running = self._tasks.get(key)
        loop = asyncio.get_running_loop()
        if running is not None and not running.done() and running.get_loop() is loop:
            return False
        self._tasks[key] = loop.create_task(
            self._run(key, tick, initial_delay, logger),
            name=f"mlkube {job} {uid}",
            context=detached(),  # not the starting event's body, for the object's lifetime
        )
        return True

    def stop(self, uid: str, job: str | None = None) -> None:
        """Cancel one job of the object, or all of them (a tick in a thread finishes alone)."""
        for key in [k for k in self._tasks if k[0] == uid and job in (None, k[1])]:
            self._tasks.pop(key).cancel()

    def running(self, uid: str) -> set[str]:
        return {job for (u, job), task in self._tasks.items() if u == uid and not task.done()}

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self, key: tuple[str, str], tick: Tick, delay: float, logger: logging.Logger | Any
    ) -> None:
        try:
            next_delay: float | None = delay
            while next_delay is not None:
                await asyncio.sleep(next_delay)
                try:
                    next_delay = await asyncio.to_thread(tick)
                except Exception:  # a loop must outlive one bad tick; the traceback says why
                    logger.exception(f"{key[1]} failed unexpectedly; retrying in {ERROR_DELAY}s")
                    next_delay = ERROR_DELAY
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]


LOOPS: Final = Loops()


def spread(uid: str, period: float) -> float:
    """The first delay of an object's periodic loop: between half and all of `period`, fixed
    by its uid. Loops started together (1,000 endpoints at operator start) would otherwise
    tick together every period, a burst of passes instead of a steady trickle."""
    fraction = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return period * (0.5 + fraction / 2)


def restart(uid: str, job: str, tick: Tick, logger: logging.Logger | Any) -> None:
    """Run a pass now (a running pass finishes first when the tick holds the object's lock),
    then follow the delays the ticks return: what a watch event that changes things does."""
    LOOPS.stop(uid, job)
    LOOPS.ensure(uid, job, tick, 0.0, logger)


class PassOutcome(Protocol):
    """What a periodic controller's pass returns (controllers/batch_endpoint.py, pipeline.py)."""

    @property
    def delay(self) -> float | None: ...
    @property
    def events(self) -> Sequence[tuple[str, str, str]]: ...
    @property
    def subject(self) -> Mapping[str, Any] | None: ...


def run_pass(
    kind: str,
    locks: KeyedLocks,
    namespace: str,
    name: str,
    one_pass: Callable[[datetime.datetime], PassOutcome],
    logger: logging.Logger | Any,
    error_delay: float,
) -> float | None:
    """A tick's body: one pass under the object's lock, counted in the metrics, its Events
    posted; an API or controller error is retried after `error_delay`."""
    try:
        with reconciling(kind), locks.hold(namespace, name):
            outcome = one_pass(datetime.datetime.now(datetime.UTC))
    except (ApiError, ControllerError) as err:
        logger.warning(f"{kind} pass failed: {err}; retrying in {error_delay}s")
        return error_delay
    post_events(outcome.subject, outcome.events)
    return outcome.delay


def post_events(subject: Mapping[str, Any] | None, events: Iterable[tuple[str, str, str]]) -> None:
    """Post a controller's (type, reason, message) Events about `subject` (a body with
    apiVersion, kind and metadata), from a tick's thread."""
    if subject is None:
        return
    body = kopf.Body(cast(kopf.RawBody, dict(subject)))
    for type_, reason, message in events:
        kopf.event(body, type=type_, reason=reason, message=message)


def housekeeping_tick() -> float:
    """Process-wide upkeep: object-store clients idle since the last verifications go."""
    shared_fs.expire()
    return HOUSEKEEPING_SECONDS


@kopf.on.startup()
async def start_housekeeping(logger: logging.Logger | Any, **_: Any) -> None:
    LOOPS.ensure("operator", "housekeeping", housekeeping_tick, HOUSEKEEPING_SECONDS, logger)


@kopf.on.cleanup()
async def stop_loops(**_: Any) -> None:
    """The operator is exiting: no loop outlives it (nor leaks into the next run in tests)."""
    await LOOPS.close()
