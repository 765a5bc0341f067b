"""Payload logging: sampled request/response pairs as CloudEvents in KServe's logger format.

A KServe user's collector reads these unchanged: binary-mode CloudEvents (`ce-*` headers, the
payload as the body) of type `org.kubeflow.serving.inference.request` and `...response`, one
`ce-id` shared by the pair, and KServe's extension attributes (`inferenceservicename`,
`namespace`, `component`, `endpoint`); mlkube adds `statuscode` to responses and `protocol`
(`http` or `grpc`) to both. Structured mode
(one JSON envelope) is there for sinks that ask for it, as the EventSink kind allows.

Bounded and fire-and-forget like the drift hook: the request path flips the coin in the app
and `offer` appends references to bytes the request already holds (no copy, no encoding) to a
bounded queue; a gRPC call offers its messages and a `render` that makes their V2 JSON bodies
(`offer_rendered`), so even that encoding happens off the call. Worker tasks on the loop render,
redact, encode and POST. A full queue, a sink that
is down or refuses, a body that cannot be redacted: the pair is dropped and counted
(`mlkube_payload_log_dropped_total{reason}`), never the prediction. After a failed POST
nothing is sent (offers are dropped as `sink_down` at once) for a backoff that doubles up to
`MAX_BACKOFF`, so a dead sink costs one connection attempt per backoff, not one per request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import hmac
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

import orjson

from mlkube import contract as c
from mlkube_serving import metrics
from mlkube_serving._http.client import UpstreamPool
from mlkube_serving._http.errors import UpstreamError

log = logging.getLogger(__name__)

MODES: Final = ("all", "request", "response")
ENCODINGS: Final = ("binary", "structured")
REDACTED: Final = "[REDACTED]"
COMPONENT: Final = "predictor"  # KServe's component attribute for the model server
# The operator's notification signing (docs/notifications.md §4), so one receiver verifies both.
SIGNATURE_HEADER: Final = "x-mlkube-signature"
SIGNATURE_TIMESTAMP_HEADER: Final = "x-mlkube-signature-timestamp"
MAX_BACKOFF: Final = 30.0
JSON: Final = b"application/json"


def is_json(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == JSON


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`, as the operator signs events."""
    return "sha256=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class LogConfig:
    """Where and what to log; one per server worker."""

    url: str
    mode: str = "all"
    rate: float = 1.0
    redact: frozenset[str] = frozenset()
    encoding: str = "binary"
    endpoint: str = ""
    deployment: str = ""
    namespace: str = ""
    signing_key: bytes | None = None
    max_pending: int = 1024
    max_pending_bytes: int = 16 * 1024 * 1024
    senders: int = 4
    timeout: float = 5.0
    backoff: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"payload log mode {self.mode!r} must be one of {', '.join(MODES)}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"payload log encoding {self.encoding!r} must be binary or structured")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"payload log sample rate {self.rate} must be between 0 and 1")
        parts = urlsplit(self.url)
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number in range
        except ValueError as exc:
            raise ValueError(f"payload log URL {self.url!r}: {exc}") from exc
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"payload log URL {self.url!r} must be http://host[:port][/path]")


class Pair(NamedTuple):
    """One sampled exchange, as the request path left it (references, not copies)."""

    model: str
    request: bytes
    request_type: bytes
    status: int
    response: bytes
    response_type: bytes
    at: float  # time.time() when served
    protocol: str = "http"


# (request body, its content type, response body, its content type)
Bodies = tuple[bytes, bytes, bytes, bytes]


# Deferred (gRPC) exchanges up to this size are rendered on the loop (tens of µs); larger
# ones in a thread, so the worker keeps answering while a big tensor becomes JSON.
RENDER_ON_LOOP_BYTES: Final = 64 * 1024


class Deferred(NamedTuple):
    """One sampled exchange whose bodies a sender renders (a gRPC call's messages as JSON)."""

    model: str
    status: int
    render: Callable[[], Bodies]
    size: int  # what the referenced messages hold, for the queued-bytes bound
    at: float
    protocol: str

    def rendered(self) -> Pair:
        request, request_type, response, response_type = self.render()
        return Pair(self.model, request, request_type, self.status, response, response_type,
                    self.at, self.protocol)  # fmt: skip


def size_of(item: Pair | Deferred) -> int:
    return item.size if isinstance(item, Deferred) else len(item.request) + len(item.response)


@dataclass
class Event:
    """One CloudEvent ready to encode."""

    type: str
    id: str
    time: str
    data: bytes
    content_type: bytes
    extensions: dict[str, str] = field(default_factory=dict)


def redact(body: bytes, names: frozenset[str]) -> bytes | None:
    """`body` with every value of a field named in `names` replaced by `REDACTED`; None when
    the body is not JSON (nothing could be redacted in it, so it must not be sent).

    Fields are found however the protocol spells them: an object key anywhere (V1 instances,
    Azure ML and Seldon jsonData records, parameters), a V2 tensor whose `name` matches (its
    `data`), and a Seldon `names` column (its values in every `ndarray` row)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(_redacted(doc, names))


def _redacted(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, list):
        return [_redacted(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: (REDACTED if k in names else _redacted(v, names)) for k, v in value.items()}
    if isinstance(value.get("name"), str) and value["name"] in names and "data" in out:
        out["data"] = REDACTED  # a V2 tensor
    columns = value.get("names")
    rows = out.get("ndarray")
    if isinstance(columns, list) and isinstance(rows, list):  # Seldon's named columns
        hidden = {i for i, n in enumerate(columns) if isinstance(n, str) and n in names}
        if hidden:
            out["ndarray"] = [
                [REDACTED if i in hidden else v for i, v in enumerate(row)]
                if isinstance(row, list)
                else row
                for row in rows
            ]
    return out


def events_of(pair: Pair, config: LogConfig) -> list[Event] | None:
    """The pair's CloudEvents for the configured mode; None when redaction is configured and
    a body is not JSON."""
    request, response = pair.request, pair.response
    if config.redact:
        if config.mode != "response":
            request = redact(request, config.redact)  # type: ignore[assignment]
        if config.mode != "request":
            response = redact(response, config.redact)  # type: ignore[assignment]
        if request is None or response is None:
            return None
    event_id = str(uuid.uuid4())
    when = datetime.datetime.fromtimestamp(pair.at, datetime.UTC).isoformat().replace("+00:00", "Z")
    ext = {
        "inferenceservicename": config.endpoint or pair.model,
        "namespace": config.namespace,
        "component": COMPONENT,
        "endpoint": config.deployment,
        "protocol": pair.protocol,
    }
    events = []
    if config.mode != "response":
        events.append(Event(c.PAYLOAD_LOG_REQUEST_TYPE, event_id, when, request,
                            pair.request_type, ext))  # fmt: skip
    if config.mode != "request":
        status = {**ext, "statuscode": str(pair.status)}
        events.append(Event(c.PAYLOAD_LOG_RESPONSE_TYPE, event_id, when, response,
                            pair.response_type, status))  # fmt: skip
    return events


def source_of(config: LogConfig) -> str:
    """ce-source: a URI reference naming the deployment that served (KServe uses its own)."""
    return f"/mlkube/{config.namespace}/{config.endpoint}/{config.deployment}".replace("//", "/")


def encode(event: Event, config: LogConfig, now: int | None = None) -> tuple[bytes, bytes]:
    """(header lines, body) of the POST carrying `event` in the configured mode."""
    source = source_of(config)
    if config.encoding == "binary":
        lines = [
            b"ce-specversion: 1.0",
            b"ce-id: " + event.id.encode(),
            b"ce-source: " + source.encode(),
            b"ce-type: " + event.type.encode(),
            b"ce-time: " + event.time.encode(),
            b"content-type: " + event.content_type,
        ]
        lines += [f"ce-{k}: {v}".encode() for k, v in event.extensions.items() if v]
        body = event.data
    else:
        envelope: dict[str, Any] = {
            "specversion": "1.0", "id": event.id, "source": source, "type": event.type,
            "time": event.time, "datacontenttype": event.content_type.decode(),
            **{k: v for k, v in event.extensions.items() if v},
        }  # fmt: skip
        try:
            envelope["data"] = orjson.loads(event.data) if is_json(event.content_type) else None
        except orjson.JSONDecodeError:
            envelope["data"] = None
        if envelope["data"] is None:  # not JSON: the bytes as they were
            del envelope["data"]
            envelope["data_base64"] = base64.b64encode(event.data).decode()
        lines = [b"content-type: application/cloudevents+json; charset=utf-8"]
        body = orjson.dumps(envelope)
    if config.signing_key is not None:
        stamp = int(time.time()) if now is None else now
        lines.append(f"{SIGNATURE_TIMESTAMP_HEADER}: {stamp}".encode())
        lines.append(f"{SIGNATURE_HEADER}: {signature(config.signing_key, stamp, body)}".encode())
    return b"".join(line + b"\r\n" for line in lines), body


class PayloadLogger:
    """Samples of served requests and responses, sent to a CloudEvents sink off the hot path."""

    def __init__(self, config: LogConfig, coin: Callable[[], float] = random.random) -> None:
        self.config = config
        self.rate = config.rate  # the app samples: `coin() < rate`
        self.coin = coin
        parts = urlsplit(config.url)
        self._host = parts.hostname or ""
        self._port = parts.port or 80
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._host_line = f"host: {parts.netloc}\r\n".encode()
        self._queue: asyncio.Queue[Pair | Deferred] | None = None
        self._queued_bytes = 0
        self._down_until = 0.0
        self._backoff = config.backoff
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: UpstreamPool | None = None

    def offer(
        self,
        model: str,
        request: bytes,
        request_type: bytes,
        status: int,
        response: bytes,
        response_type: bytes,
    ) -> None:
        """Keep one sampled exchange for the senders; never blocks, never raises (on the loop,
        after the response was sent)."""
        size = len(request) + len(response)
        if self._admit(model, size):
            self._enqueue(Pair(model, request, request_type, status, response, response_type,
                               time.time()), size)  # fmt: skip

    def offer_rendered(
        self, model: str, status: int, size: int, render: Callable[[], Bodies], protocol: str
    ) -> None:
        """Keep one sampled exchange whose bodies `render` makes later, in a sender task (it
        must only read what the call no longer changes); `size` bytes count against the
        queued-bytes bound. Never blocks, never raises."""
        if self._admit(model, size):
            self._enqueue(Deferred(model, status, render, size, time.time(), protocol), size)

    def _admit(self, model: str, size: int) -> bool:
        queue = self._queue
        if queue is None:
            return False
        if self._down_until and time.monotonic() < self._down_until:
            metrics.count_payload_log_dropped(model, "sink_down")
            return False
        if queue.full() or self._queued_bytes + size > self.config.max_pending_bytes:
            metrics.count_payload_log_dropped(model, "queue_full")
            return False
        return True

    def _enqueue(self, item: Pair | Deferred, size: int) -> None:
        assert self._queue is not None
        self._queued_bytes += size
        self._queue.put_nowait(item)

    def start(self) -> None:
        """Start the senders on the running loop (the worker's lifespan startup)."""
        self._queue = asyncio.Queue(self.config.max_pending)
        self._pool = UpstreamPool(self._host, self._port, self.config.senders, 64 * 1024)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send_loop()) for _ in range(self.config.senders)]

    async def stop(self, grace: float = 2.0) -> None:
        """Give what is queued or being sent `grace` seconds to go out, then stop the senders."""
        queue = self._queue
        # join, not `empty()`: a pair a sender already took is unfinished until it was sent.
        if queue is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._pool is not None:
            self._pool.retire()

    async def _send_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            item = await queue.get()
            try:
                await self._send(item)
            except Exception:  # a bug must not end the sender; the pair is counted lost
                log.exception("payload log delivery failed")
                metrics.count_payload_log_dropped(item.model, "error")
            finally:
                # Released once sent: the bound covers the pairs being encoded and posted too.
                self._queued_bytes -= size_of(item)
                queue.task_done()

    async def _send(self, item: Pair | Deferred) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            metrics.count_payload_log_dropped(item.model, "sink_down")
            return
        if not isinstance(item, Deferred):
            pair = item
        elif item.size <= RENDER_ON_LOOP_BYTES:
            pair = item.rendered()
        else:  # a large call's JSON takes long enough to stall the loop's other requests
            pair = await asyncio.to_thread(item.rendered)
        events = events_of(pair, self.config)
        if events is None:
            metrics.count_payload_log_dropped(pair.model, "unredactable")
            return
        for event in events:
            if not await self._post(*encode(event, self.config)):
                metrics.count_payload_log_dropped(pair.model, "post_failed")
                return
            metrics.count_payload_log_sent(pair.model)
        self._down_until = 0.0
        self._backoff = self.config.backoff

    async def _post(self, headers: bytes, body: bytes) -> bool:
        assert self._pool is not None
        data = b"".join((b"POST ", self._target.encode(), b" HTTP/1.1\r\n", self._host_line,
                         headers, b"content-length: ", str(len(body)).encode(), b"\r\n\r\n",
                         body))  # fmt: skip
        deadline = asyncio.get_running_loop().time() + self.config.timeout
        try:
            response = await self._pool.request(data, deadline)
        except UpstreamError as exc:
            self._sink_failed(str(exc))
            return False
        if response.status >= 300:
            self._sink_failed(f"answered {response.status}")
            return False
        return True

    def _sink_failed(self, reason: str) -> None:
        if not self._down_until:
            log.warning("payload log sink %s: %s; dropping pairs for %gs",
                        self.config.url, reason, self._backoff)  # fmt: skip
        self._down_until = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)


def redact_names(text: str) -> frozenset[str]:
    """The comma-separated field names of MLKUBE_PAYLOAD_LOG_REDACT."""
    return frozenset(n.strip() for n in text.split(",") if n.strip())
