"""A local CloudEvents receiver for `mlkube events listen`: the HTTP side of an EventSink.

Standard library only (http.server in threads), because the CLI must not need the operator's or a
CloudEvents SDK's dependencies to show what a sink would get. It reads what the operator's
delivery sends (mlkube.events.encode): CloudEvents 1.0 over HTTP in binary mode (`ce-*` headers,
percent-decoded, data as the body) and structured mode (`application/cloudevents+json`), the
batched form for other senders, and `format: azureml` deliveries (an Event Grid JSON array). It
answers 204 to what it parsed and 400 to what it could not (the operator does not retry a 4xx),
and the CloudEvents webhook validation handshake (OPTIONS) for senders that do one.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal
from urllib.parse import unquote

MAX_BODY_BYTES: Final = 1 << 20  # the operator's events are a few KiB
CE_PREFIX: Final = "ce-"
STRUCTURED: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
EVENT_GRID_HEADER: Final = "aeg-event-type"
REQUIRED: Final = ("specversion", "id", "source", "type")
EVENT_GRID_REQUIRED: Final = ("id", "eventType", "subject", "eventTime")

Format = Literal["cloudevents", "azureml"]


class NotAnEvent(ValueError):
    """The request is not a CloudEvent (nor an Event Grid delivery): answered 400."""


@dataclass(frozen=True)
class ReceivedEvent:
    """One event as received: its context attributes (or Event Grid envelope) and its data."""

    format: Format
    mode: str  # binary | structured | batch | eventgrid
    attributes: dict[str, Any]
    data: Any = None

    @property
    def type(self) -> str:
        key = "eventType" if self.format == "azureml" else "type"
        return str(self.attributes.get(key, ""))

    @property
    def id(self) -> str:
        return str(self.attributes.get("id", ""))

    @property
    def subject(self) -> str:
        return str(self.attributes.get("subject") or "")

    @property
    def time(self) -> str | None:
        value = self.attributes.get("eventTime" if self.format == "azureml" else "time")
        return str(value) if value else None

    @property
    def dedup_key(self) -> tuple[str, str]:
        """CloudEvents: source + id identify an event; Event Grid: its id (and topic)."""
        source = self.attributes.get("topic" if self.format == "azureml" else "source")
        return (str(source or ""), self.id)

    def to_json(self) -> dict[str, Any]:
        """The whole event: the structured-mode object, or the Event Grid event."""
        return {**self.attributes, "data": self.data}


def parse_request(headers: Mapping[str, str], body: bytes) -> list[ReceivedEvent]:
    """The events one POST carries; NotAnEvent when it carries none."""
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "").split(";")[0].strip().lower()
    if "ce-specversion" in lowered:
        return [_binary(lowered, content_type, body)]
    if content_type == STRUCTURED:
        return [_structured(_json(body), "structured")]
    if content_type == BATCH:
        doc = _json(body)
        if not isinstance(doc, list):
            raise NotAnEvent("a CloudEvents batch must be a JSON array")
        return [_structured(item, "batch") for item in doc]
    if EVENT_GRID_HEADER in lowered or content_type == "application/json":
        return _event_grid(_json(body))
    raise NotAnEvent(
        f"not a CloudEvent: no ce-specversion header and content type {content_type or 'none'}"
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise NotAnEvent(f"the body is not JSON: {exc}") from exc


def _check(attributes: Mapping[str, Any], required: tuple[str, ...]) -> None:
    missing = [name for name in required if not attributes.get(name)]
    if missing:
        raise NotAnEvent(f"missing required attribute(s): {', '.join(missing)}")


def _binary(headers: Mapping[str, str], content_type: str, body: bytes) -> ReceivedEvent:
    # The HTTP binding percent-encodes header values (UTF-8); names are case-insensitive.
    attributes: dict[str, Any] = {
        name[len(CE_PREFIX) :]: unquote(value)
        for name, value in headers.items()
        if name.startswith(CE_PREFIX)
    }
    _check(attributes, REQUIRED)
    if content_type:
        attributes["datacontenttype"] = headers["content-type"]
    data: Any = None
    if body:
        if content_type == "application/json" or content_type.endswith("+json"):
            data = _json(body)
        else:
            data = body.decode("utf-8", "replace")
    return ReceivedEvent("cloudevents", "binary", attributes, data)


def _structured(doc: Any, mode: str) -> ReceivedEvent:
    if not isinstance(doc, dict):
        raise NotAnEvent("a structured CloudEvent must be a JSON object")
    _check(doc, REQUIRED)
    attributes = {k: v for k, v in doc.items() if k not in ("data", "data_base64")}
    data = doc.get("data", doc.get("data_base64"))
    return ReceivedEvent("cloudevents", mode, attributes, data)


def _event_grid(doc: Any) -> list[ReceivedEvent]:
    if not isinstance(doc, list) or not all(isinstance(item, dict) for item in doc):
        raise NotAnEvent("not a CloudEvent and not an Event Grid delivery (a JSON array)")
    events = []
    for item in doc:
        _check(item, EVENT_GRID_REQUIRED)
        attributes = {k: v for k, v in item.items() if k != "data"}
        events.append(ReceivedEvent("azureml", "eventgrid", attributes, item.get("data")))
    return events


class Receiver:
    """An HTTP server on (host, port) in a background thread; parsed events go to `events`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.events: queue.Queue[ReceivedEvent] = queue.Queue()
        self.rejected: queue.Queue[str] = queue.Queue()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mlkube-events-receiver", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the operator reuses its connections

        def do_POST(self) -> None:
            try:
                body = self._body()
            except NotAnEvent as exc:
                self._answer(413, str(exc))
                return
            try:
                events = parse_request(dict(self.headers.items()), body)
            except NotAnEvent as exc:
                receiver.rejected.put(str(exc))
                self._answer(400, str(exc))
                return
            for event in events:
                receiver.events.put(event)
            self._answer(204)

        def do_OPTIONS(self) -> None:
            # CloudEvents webhook spec, abuse protection: allow whoever asks (loopback only).
            self.send_response(200)
            self.send_header(
                "WebHook-Allowed-Origin", self.headers.get("WebHook-Request-Origin", "*")
            )
            self.send_header("WebHook-Allowed-Rate", "*")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._chunked()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise NotAnEvent(f"body larger than {MAX_BODY_BYTES} bytes")
            return self.rfile.read(length)

        def _chunked(self) -> bytes:
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise NotAnEvent(f"body larger than {MAX_BODY_BYTES} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()

        def _answer(self, status: int, message: str = "") -> None:
            payload = message.encode()
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            if status == 413:  # the body is left unread: this connection cannot go on
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # stdout is for events; failures are reported through `rejected`

    return Handler
