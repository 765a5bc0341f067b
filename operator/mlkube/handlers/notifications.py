"""Notifications (docs/notifications.md): the outbox and delivery engine of this Kopf run, and
the watch handlers that turn Model, OnlineEndpoint, BatchJob and PipelineRun states into
CloudEvents.

`@kopf.on.event` only (no finalizer, nothing written to the objects). Which sinks want what
comes from the `sink_filters` index (handlers/event_sinks.py): Kopf holds every other handler
until its indexes are filled, so after a restart no event is offered before the sinks are
known. The engine is opened at the start of the Kopf run that handles resources (or on first
use) — with leader election only the leader's (startup activities also run in the serving
operator, which must never open the outbox) — and stopped at that run's cleanup. Enqueueing is
one short SQLite transaction in a thread: a sink that is down never slows these handlers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import kopf

from mlkube.builders.event_sink import DEFAULT_SINK_KEY, SinkFilter, fingerprint
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import (
    GROUP,
    KIND_BATCH_JOB,
    KIND_MODEL,
    KIND_ONLINE_ENDPOINT,
    KIND_PIPELINE_RUN,
    PLURAL_BATCH_JOBS,
    PLURAL_MODELS,
    PLURAL_ONLINE_ENDPOINTS,
    PLURAL_PIPELINE_RUNS,
    VERSION,
)
from mlkube.controllers.notify import Chooser, Notifier, encode_stored
from mlkube.handlers.config import operator_config
from mlkube.handlers.task_context import detached
from mlkube.outbox.engine import Delivery
from mlkube.outbox.model import SinkConfig, Target
from mlkube.outbox.store import Outbox
from mlkube.outbox.transport import sink_policy

log = logging.getLogger(__name__)
INDEX: Final = "sink_filters"  # handlers/event_sinks.py: Kopf passes indexes by name


@dataclass
class Running:
    """The engine of one Kopf run (tests run several, one after the other, in one process)."""

    loop: asyncio.AbstractEventLoop
    delivery: Delivery
    notifier: Notifier
    swept: bool = False  # deliveries of sinks deleted while no operator ran: dropped once


class _State:
    running: Running | None = None
    lock: asyncio.Lock | None = None
    lock_loop: asyncio.AbstractEventLoop | None = None


def default_sink(config: OperatorConfig) -> SinkConfig | None:
    sink = config.notifications.default_sink
    if sink is None:
        return None
    # A hash (it is stored in the outbox after a 410; the URL may hold credentials) of every
    # setting, as for EventSinks: a changed config lifts a 410 stop.
    settings = {"uri": sink.uri, "mode": sink.mode, "format": sink.format}
    return SinkConfig(
        key=DEFAULT_SINK_KEY, target=Target(sink.uri), fingerprint=fingerprint(settings),
        mode="structured" if sink.mode == "structured" else "binary",
        format="azureml" if sink.format == "azureml" else "cloudevents",
    )  # fmt: skip


async def engine() -> Running:
    """This run's engine, opened (and the default sink registered) on first use."""
    loop = asyncio.get_running_loop()
    if _State.running is not None and _State.running.loop is loop:
        return _State.running
    if _State.lock is None or _State.lock_loop is not loop:
        _State.lock, _State.lock_loop = asyncio.Lock(), loop
    async with _State.lock:
        if _State.running is not None and _State.running.loop is loop:
            return _State.running
        config = operator_config()
        settings = config.notifications
        outbox = await asyncio.to_thread(
            Outbox, settings.outbox_path, max_events=settings.outbox_max_events,
            replay_window=settings.replay_window,
        )  # fmt: skip
        policy = sink_policy(allow_loopback=config.allow_file_artifacts)
        delivery = Delivery(outbox, encoder=encode_stored, policy=policy)
        sink = default_sink(config)
        if sink is not None:
            delivery.set_sink(sink)
        # Its tasks live for the run: never in the context of the event that opened it.
        await asyncio.get_running_loop().create_task(delivery.start(), context=detached())
        fresh = " (fresh: older events are not replayed)" if outbox.fresh else ""
        log.info(f"notifications: outbox {settings.outbox_path}{fresh}")
        _State.running = Running(loop, delivery, Notifier(outbox, time.time))
        return _State.running


@kopf.on.startup()
async def start_notifications(logger: kopf.Logger, **_: Any) -> None:
    """The Kopf run that handles resources opens the engine at once: deliveries left pending
    by a previous run go out even if no watched object implies anything any more. (Under
    leader election the serving run starts first, unelected: it leaves the outbox alone.)"""
    # Imported here: importing it registers its probe, and probes keep import order.
    from mlkube.handlers.leadership import Role

    if Role.elected and not Role.leading:
        return
    try:
        await engine()
    except Exception as err:  # opened on the first event instead; that one reports it too
        logger.warning(f"notifications: outbox not opened: {type(err).__name__}: {err}")


def current() -> Running | None:
    """The engine of the running loop, if opened (sink status ticks read it from threads)."""
    return _State.running


@kopf.on.cleanup()
async def stop_notifications(**_: Any) -> None:
    """This Kopf run ends: stop its workers (pending rows stay on disk) and close the outbox.
    The other Kopf run of the process (the serving one, under leader election) leaves it."""
    running = _State.running
    if running is None or running.loop is not asyncio.get_running_loop():
        return
    _State.running = None
    await running.delivery.stop()
    await asyncio.to_thread(running.delivery.outbox.close)


def chooser(filters: Iterable[tuple[str, Iterable[SinkFilter]]]) -> Chooser:
    """Who wants (type, namespace): the EventSinks in the index, and the default sink."""
    sinks = [f for _, values in filters for f in values]
    default = operator_config().notifications.default_sink is not None

    def choose(event_type: str, namespace: str) -> list[str]:
        keys = [f.key for f in sinks if f.wants(namespace, event_type)]
        return [DEFAULT_SINK_KEY, *keys] if default else keys

    return choose


def sweep(running: Running, sinks: set[str]) -> None:
    """Drop the pending deliveries of sinks that no longer exist (deleted while no operator
    ran, so no DELETED event removed them). Kopf fills the index before any handler runs, so
    it names every sink there is."""
    for key in running.delivery.outbox.pending():
        if key != DEFAULT_SINK_KEY and key not in sinks:
            log.info(f"notifications: sink {key} is gone; its pending deliveries are dropped")
            running.delivery.remove_sink(key)


async def notify(
    kind: str, event: str, body: kopf.Body, filters: kopf.Index[str, SinkFilter], logger: Any
) -> None:
    """Offer what the object's state implies (or its deletion) to the outbox."""
    try:
        running = await engine()
        if not running.swept:
            running.swept = True
            await asyncio.to_thread(sweep, running, {key for key, _ in filters.items()})
        choose = chooser(list(filters.items()))
        if event == "DELETED":
            await asyncio.to_thread(running.notifier.deleted, kind, dict(body), choose)
        else:
            await asyncio.to_thread(running.notifier.notice, kind, dict(body), choose)
    except Exception as err:  # never fail a watch: the next event (or restart) offers it again
        logger.warning(f"notifications: {kind} events not enqueued: {type(err).__name__}: {err}")


@kopf.on.event(GROUP, VERSION, PLURAL_MODELS)
async def model_events(type: str, body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
    await notify(KIND_MODEL, type, body, kwargs[INDEX], logger)


@kopf.on.event(GROUP, VERSION, PLURAL_ONLINE_ENDPOINTS)
async def endpoint_events(type: str, body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
    await notify(KIND_ONLINE_ENDPOINT, type, body, kwargs[INDEX], logger)


@kopf.on.event(GROUP, VERSION, PLURAL_BATCH_JOBS)
async def batch_job_events(type: str, body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
    await notify(KIND_BATCH_JOB, type, body, kwargs[INDEX], logger)


@kopf.on.event(GROUP, VERSION, PLURAL_PIPELINE_RUNS)
async def pipeline_run_events(
    type: str, body: kopf.Body, logger: kopf.Logger, **kwargs: Any
) -> None:
    await notify(KIND_PIPELINE_RUN, type, body, kwargs[INDEX], logger)
