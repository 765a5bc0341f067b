"""A CloudEvents receiver built on the `cloudevents` SDK, run as its own process on loopback.

Every POST is parsed by the SDK's `from_http_event` (binary or structured; an Event Grid array,
`format: azureml`, is recorded as is and accepted); what it answers is
set through POST /control: {"mode": "ok" | "fail" | "throttle" | "gone" | "slow",
"count": n (the next n events get that answer, then ok; absent: until changed),
"retry_after": "2" or an HTTP date, "delay": seconds (slow), "status": 500}.
GET /received lists what was accepted (id, type, time received, signature ok, data, every
context attribute as text) and
GET /attempts counts every request by event id. Used by the process tests and bench/events.
"""

from __future__ import annotations

import argparse
import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from mlkube.events.encode import verify

STATE: dict[str, Any] = {"mode": "ok", "count": None, "retry_after": "1", "delay": 0.0,
                         "status": 500}  # fmt: skip
RECEIVED: list[dict[str, Any]] = []
ATTEMPTS: dict[str, int] = {}
LOCK = threading.Lock()
KEY: list[bytes] = []


def mode_of(headers: dict[str, str]) -> str:
    return "binary" if "ce-id" in headers else "structured"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with LOCK:
            doc: Any = RECEIVED if self.path == "/received" else ATTEMPTS
            body = json.dumps(doc).encode()
        self._reply(200, body, {"Content-Type": "application/json"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/control":
            with LOCK:
                STATE.update({"count": None}, **json.loads(body))
            return self._reply(204)
        headers = {name.lower(): value for name, value in self.headers.items()}
        if headers.get("aeg-event-type"):  # format: azureml (Event Grid's schema)
            return self._event_grid(body)
        event = from_http_event(HTTPMessage(headers=headers, body=body))
        event_id = event.get_id()
        with LOCK:
            ATTEMPTS[event_id] = ATTEMPTS.get(event_id, 0) + 1
            mode = STATE["mode"]
            if STATE["count"] is not None:
                STATE["count"] -= 1
                if STATE["count"] < 0:
                    mode = "ok"
        if mode == "slow":
            time.sleep(float(STATE["delay"]))
        elif mode == "fail":
            return self._reply(int(STATE["status"]), b"receiver told to fail")
        elif mode == "throttle":
            return self._reply(429, b"slow down", {"Retry-After": str(STATE["retry_after"])})
        elif mode == "gone":
            return self._reply(410, b"gone")
        signed = verify(headers, body, KEY[0], time.time()) if KEY else None
        with LOCK:
            RECEIVED.append({"id": event_id, "type": event.get_type(), "at": time.time(),
                             "signed": signed, "data": event.get_data(),
                             "subject": event.get_subject(), "mode": mode_of(headers),
                             "dead_letter": headers.get("x-mlkube-dead-letter"),
                             "attributes": {k: _text(v) for k, v in
                                            event.get_attributes().items()}})  # fmt: skip
        self._reply(202)

    def _event_grid(self, body: bytes) -> None:
        """An Event Grid array: each event recorded like a CloudEvent (type = eventType)."""
        with LOCK:
            for event in json.loads(body):
                ATTEMPTS[event["id"]] = ATTEMPTS.get(event["id"], 0) + 1
                RECEIVED.append({"id": event["id"], "type": event["eventType"], "at": time.time(),
                                 "signed": None, "data": event["data"], "dead_letter": None,
                                 "subject": event.get("subject"), "mode": "eventgrid",
                                 "attributes": {k: _text(v) for k, v in event.items()
                                                if k != "data"}})  # fmt: skip
        self._reply(200)


def _text(value: object) -> str:
    """An attribute as it was on the wire (the SDK parses `time` into a datetime)."""
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", default="")
    args = parser.parse_args()
    if args.key:
        KEY.append(args.key.encode())
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
