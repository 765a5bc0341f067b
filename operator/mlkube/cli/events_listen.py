"""`mlkube events listen`: a local receiver plus the EventSink that points the operator at it,
printing events as they arrive and removing the sink on the way out.

The operator of `make dev` runs on this machine, so a loopback URL reaches it (its outbound guard
allows loopback in dev mode only; an operator in a pod reports the refusal, which the listener
shows from the sink's status). Events are delivered at least once: a redelivery (same source and
id) is marked, and does not count towards --count. Events go to stdout, everything else to
stderr, so `--json` output pipes cleanly.
"""

from __future__ import annotations

import queue
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Final

from mlkube.cli import events_view as view
from mlkube.cli.errors import CliError
from mlkube.cli.events_receiver import ReceivedEvent, Receiver
from mlkube.cli.events_sink import apply_sink, build_sink, delete_sink, sink_name
from mlkube.contract import API_VERSION, KIND_EVENT_SINK
from mlkube.k8s import ApiError, Kube

HOST: Final = "127.0.0.1"
STATUS_EVERY: Final = 2.0  # seconds between reads of the sink's status
NO_STATUS_AFTER: Final = 15.0  # then say the operator has not picked the sink up


@dataclass(frozen=True)
class Options:
    namespace: str
    types: list[str]
    port: int
    mode: str
    format: str
    json: bool
    count: int | None
    timeout: float | None


class _Stop(Exception):
    """SIGTERM: leave like Ctrl-C does (the sink is deleted)."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_notes(
    previous: tuple[Any, ...], obj: Mapping[str, Any]
) -> tuple[tuple[Any, ...], list[str]]:
    """What changed in the sink's status worth telling (Ready, a new failure, a throttle)."""
    status = obj.get("status") or {}
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    failure = status.get("lastFailure") or {}
    state = (
        ready.get("status"), ready.get("reason"), failure.get("time"), status.get("throttledUntil")
    )  # fmt: skip
    notes = []
    if state[:2] != previous[:2] and ready:
        if ready.get("status") == "True":
            notes.append(f"sink Ready: the operator delivers to {status.get('sinkUri') or '?'}")
        else:
            notes.append(f"sink not Ready ({ready.get('reason', '?')}): {ready.get('message', '')}")
    if failure and state[2] != previous[2]:
        notes.append(f"delivery failed: {view.format_failure(failure)}")
    if state[3] and state[3] != previous[3]:
        notes.append(f"delivery throttled until {state[3]} (the receiver answered 429)")
    return state, notes


class Listener:
    def __init__(self, kube: Kube, options: Options) -> None:
        self.kube = kube
        self.options = options
        self.seen: set[tuple[str, str]] = set()
        self.received = 0
        self._state: tuple[Any, ...] = (None, None, None, None)
        self._observed = False

    def run(self) -> int:
        opts = self.options
        try:
            receiver = Receiver(HOST, opts.port)
        except OSError as exc:
            raise CliError(f"cannot listen on {HOST}:{opts.port}: {exc.strerror}") from exc
        host = socket.gethostname()
        name = sink_name(host, receiver.port)
        uri = f"http://{HOST}:{receiver.port}/"
        sink = build_sink(name, opts.namespace, uri, host=host, types=opts.types,
                          mode=opts.mode, format=opts.format)  # fmt: skip
        receiver.start()
        uid: str | None = None
        # From the apply on, the sink may exist (an interrupt can land before its answer): it
        # is removed by name then, which is safe because the name holds this process's port.
        created = False
        old_term = signal.signal(signal.SIGTERM, _stop)
        # Explicitly: a process started in the background of a non-interactive shell inherits
        # SIGINT ignored, and Python then never raises KeyboardInterrupt.
        old_int = signal.signal(signal.SIGINT, _stop)
        try:
            created = True
            try:
                uid = apply_sink(self.kube, sink)["metadata"].get("uid")
            except CliError:
                created = False  # refused (no CRD, no rights, no API server): nothing to remove
                raise
            what = ", ".join(opts.types) or "all event types"
            self._note(f"listening on {uri} for {what} in namespace {opts.namespace} "
                       f"(EventSink {name}); Ctrl-C to stop")  # fmt: skip
            return self._loop(receiver, name)
        except (KeyboardInterrupt, _Stop):
            self._note(f"stopped: {self.received} event(s) received")
            return 0
        finally:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)
            receiver.close()
            if created:
                self._remove(name, uid)

    def _loop(self, receiver: Receiver, name: str) -> int:
        opts = self.options
        started = time.monotonic()
        deadline = None if opts.timeout is None else started + opts.timeout
        next_status = started + STATUS_EVERY
        while opts.count is None or self.received < opts.count:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                if opts.count is not None:
                    raise CliError(f"timed out after {opts.timeout:g}s: received "
                                   f"{self.received} of {opts.count} event(s)")  # fmt: skip
                self._note(f"timeout: {self.received} event(s) received")
                return 0
            if now >= next_status:
                self._check_status(name, now - started)
                next_status = now + STATUS_EVERY
            wait = min(0.5, max(0.0, (deadline or now + 0.5) - now))
            self._drain_rejected(receiver)
            try:
                event = receiver.events.get(timeout=wait)
            except queue.Empty:
                continue
            self._show(event)
        return 0

    def _show(self, event: ReceivedEvent) -> None:
        duplicate = event.dedup_key in self.seen
        if not duplicate:
            self.seen.add(event.dedup_key)
            self.received += 1
        if self.options.json:
            if not duplicate:
                print(view.render_event_json(event), flush=True)
        else:
            print(view.render_event(event, now_text(), duplicate), flush=True)

    def _drain_rejected(self, receiver: Receiver) -> None:
        while True:
            try:
                reason = receiver.rejected.get_nowait()
            except queue.Empty:
                return
            self._note(f"answered 400 to a request that is not an event: {reason}")

    def _check_status(self, name: str, elapsed: float) -> None:
        try:
            obj = self.kube.get(API_VERSION, KIND_EVENT_SINK, name, self.options.namespace)
        except ApiError as err:
            self._note(f"cannot read the EventSink's status: {err}")
            return
        if obj is None:
            raise CliError(f"EventSink {self.options.namespace}/{name} was deleted by someone "
                           "else: no more events will come")  # fmt: skip
        observed = ((obj.get("status") or {}).get("observedGeneration") or 0) > 0
        if not observed and not self._observed and elapsed >= NO_STATUS_AFTER and not self.seen:
            self._observed = True  # say it once
            self._note("the operator has not picked the sink up yet: is it running (make dev), "
                       "with notifications enabled?")  # fmt: skip
        self._state, notes = status_notes(self._state, obj)
        for note in notes:
            self._note(note)

    def _remove(self, name: str, uid: str | None) -> None:
        try:
            delete_sink(self.kube, self.options.namespace, name, uid)
        except CliError as exc:
            self._note(f"{exc}; remove it with: kubectl delete eventsink -n "
                       f"{self.options.namespace} {name}")  # fmt: skip

    @staticmethod
    def _note(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
