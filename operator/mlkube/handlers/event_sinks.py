"""EventSink handlers: the `sink_filters` index (who wants which events), registration with
the delivery engine, and the sink's status (docs/notifications.md §1).

No finalizer: an index, `@kopf.on.event`, and one periodic loop per sink (handlers/periodic.py)
that resolves the sink (its Service and signing Secret, re-read every RESOLVE_EVERY seconds:
they are read by name, never watched) and syncs its status from the engine every TICK seconds
— written only when it changed, at most every few seconds (controllers/event_sink.py).
A sink that becomes unusable (its Secret deleted) keeps its last good settings in the engine
and shows Stalled until fixed; a deleted sink is removed (its pending deliveries dropped).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any, Final

import kopf

from mlkube.builders.event_sink import SinkFilter, sink_filter, sink_key
from mlkube.contract import API_VERSION, GROUP, KIND_EVENT_SINK, PLURAL_EVENT_SINKS, VERSION
from mlkube.controllers.event_sink import StatusKeeper, resolve
from mlkube.controllers.kube import get_live
from mlkube.handlers import notifications
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.periodic import LOOPS, restart
from mlkube.handlers.webhooks import WebhookConfig
from mlkube.outbox.model import SinkConfig

JOB: Final = "event-sink"
TICK: Final = 2.0  # status sync (a write only on change, rate-limited)
RESOLVE_EVERY: Final = 30.0  # Service and Secret re-read


def operator_namespace() -> str:
    return WebhookConfig.from_env(dict(os.environ)).namespace


@functools.cache
def keeper() -> StatusKeeper:
    return StatusKeeper(kube(), time.time)


@kopf.index(GROUP, VERSION, PLURAL_EVENT_SINKS)
def sink_filters(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[str, SinkFilter]:
    """Filled from the first listing before any other handler runs (Kopf waits for indexes),
    so a restarted operator knows every sink before it offers the first event."""
    ns = namespace or "default"
    return {sink_key(ns, name): sink_filter(ns, name, dict(spec), operator_namespace())}


@dataclass
class SinkLoop:
    """One sink's periodic work: resolve when due, register changes, sync the status."""

    namespace: str
    name: str
    uid: str
    generation: int = -1  # the generation wanted (from the watch)
    resolved_generation: int = -2
    resolved_at: float = float("-inf")
    applied: SinkConfig | None = None

    def tick(self) -> float | None:
        running = notifications.current()
        if running is None:  # this Kopf run is ending
            return None
        now = time.monotonic()
        if self.generation != self.resolved_generation or now - self.resolved_at > RESOLVE_EVERY:
            obj = get_live(kube(), API_VERSION, KIND_EVENT_SINK, self.name, self.namespace,
                           self.uid)  # fmt: skip
            if obj is None:
                return None
            spec = obj.get("spec") or {}
            res = resolve(kube(), self.namespace, self.name, spec, operator_config().cluster_domain)
            self.resolved_generation = int(obj["metadata"].get("generation") or 0)
            self.resolved_at = now
            keeper().resolved(self.uid, res)
            if res.config is not None and res.config != self.applied:
                running.delivery.set_sink(res.config)
                self.applied = res.config
        state = running.delivery.state(self.applied.key) if self.applied else None
        keeper().sync(self.uid, state)
        return TICK


_LOOPS: Final[dict[str, SinkLoop]] = {}


@kopf.on.event(GROUP, VERSION, PLURAL_EVENT_SINKS)
async def event_sink_changed(
    type: str, body: kopf.Body, name: str, namespace: str | None, uid: str,
    logger: kopf.Logger, **_: Any,
) -> None:  # fmt: skip
    namespace = namespace or "default"
    running = await notifications.engine()
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        LOOPS.stop(uid, JOB)
        _LOOPS.pop(uid, None)
        keeper().forget(uid)
        running.delivery.remove_sink(sink_key(namespace, name))
        return
    generation = int(body.metadata.get("generation") or 0)
    keeper().seen(uid, namespace, name, generation, body.get("status") or {})
    loop = _LOOPS.get(uid)
    if loop is None or loop.generation != generation or JOB not in LOOPS.running(uid):
        loop = loop or SinkLoop(namespace, name, uid)
        loop.generation = generation
        _LOOPS[uid] = loop
        restart(uid, JOB, loop.tick, logger)
