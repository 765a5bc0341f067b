"""A CloudEvents receiver built on the `cloudevents` SDK, run as its own process on loopback.

Every POST is parsed by `cloudevents.http.from_http` (binary or structured); what it answers is
set through POST /control: {"mode": "ok" | "fail" | "throttle" | "gone" | "slow",
"count": n (the next n events get that answer, then ok; absent: until changed),
"retry_after": "2" or an HTTP date, "delay": seconds (slow), "status": 500}.
GET /received lists what was accepted (id, type, time received, signature ok, data, every
context attribute as text) and
GET /attempts counts every request by event id. Used by the process tests and bench/events.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.v1.http import from_http

from mlkube.outbox.transport import verify_signature

STATE: dict[str, Any] = {"mode": "ok", "count": None, "retry_after": "1", "delay": 0.0,
                         "status": 500}  # fmt: skip
RECEIVED: list[dict[str, Any]] = []
ATTEMPTS: dict[str, int] = {}
LOCK = threading.Lock()
KEY: list[bytes] = []


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
        event = from_http(dict(self.headers.items()), body)
        with LOCK:
            ATTEMPTS[event["id"]] = ATTEMPTS.get(event["id"], 0) + 1
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
        signed = verify_signature(KEY[0], body, dict(self.headers.items()), time.time()) if KEY \
            else None  # fmt: skip
        with LOCK:
            RECEIVED.append({"id": event["id"], "type": event["type"], "at": time.time(),
                             "signed": signed, "data": event.data,
                             "dead_letter": self.headers.get("X-Mlkube-Dead-Letter"),
                             "attributes": {k: str(v) for k, v in
                                            event.get_attributes().items()}})  # fmt: skip
        self._reply(202)


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
