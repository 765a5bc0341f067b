"""Kubernetes watches for the pipeline benchmark: events as they arrive, timed on arrival.

The benchmark measures controllers by the events they cause (a pod created, a run Succeeded), so
it watches instead of polling: a poll interval would be added to every figure. One streaming
GET per watch through the mlkube client's own connection pool (its kubeconfig, TLS and token),
resumed from the last resourceVersion when the server ends it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3

from mlkube.k8s import Kube

Event = tuple[str, dict[str, Any], float]  # type, object, monotonic arrival time
WATCH_SECONDS = 20


def watch(
    kube: Kube, path: str, stop: threading.Event, query: dict[str, str] | None = None
) -> Iterator[Event]:
    """Events of a collection path (`kube.path(...)`), from the current state on (ADDED for
    what exists), until `stop` is set (seen at the next event or reconnection)."""
    version = ""
    while not stop.is_set():
        # The server ends each watch after WATCH_SECONDS: `stop` is seen at least that often.
        params = [
            ("watch", "1"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_SECONDS)),
            *(query or {}).items(),
        ]
        if version:
            params.append(("resourceVersion", version))
        method, url, headers, _, _ = kube.api.param_serialize(
            "GET",
            path,
            query_params=params,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        resp = kube.api.rest_client.pool_manager.request(
            method,
            url,
            headers=headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=WATCH_SECONDS + 30),
        )
        if resp.status != 200:
            body = resp.read()
            resp.release_conn()
            if resp.status == 410:  # our resourceVersion is too old: start from now
                version = ""
                continue
            raise RuntimeError(f"watch {path}: {resp.status} {body[:300]!r}")
        buffer = b""
        try:
            # A chunked response yields each chunk as it arrives: one event, no read-ahead.
            for chunk in resp.stream(None):
                if stop.is_set():
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    arrived = time.monotonic()
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":  # e.g. 410 Gone inside the stream
                        version = ""
                        break
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        yield event["type"], obj, arrived
        finally:
            resp.release_conn()


class Recorder:
    """Records, per object name, when each value of `state(obj)` was first seen (monotonic
    seconds), from one namespace-wide watch in a thread; `wait` blocks until a value shows."""

    def __init__(
        self,
        kube: Kube,
        api_version: str,
        kind: str,
        namespace: str,
        state: Callable[[dict[str, Any]], str | None],
    ) -> None:
        self.path = kube.path(api_version, kind, namespace)
        self.kube = kube
        self.state = state
        self.seen: dict[str, dict[str, float]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{kind}")

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()  # the daemon thread ends at its next event or reconnection

    def _run(self) -> None:
        try:
            for kind, obj, arrived in watch(self.kube, self.path, self.stop):
                name = obj["metadata"]["name"]
                value = None if kind == "DELETED" else self.state(obj)
                with self.cond:
                    self.objects[name] = obj
                    if value is not None:
                        self.seen.setdefault(name, {}).setdefault(value, arrived)
                    self.cond.notify_all()
        except BaseException as err:  # surfaced by wait(): a dead watch must not look idle
            with self.cond:
                self.error = err
                self.cond.notify_all()

    def wait(self, name: str, values: tuple[str, ...], timeout: float) -> tuple[str, float]:
        """(value, first-seen time) of the first of `values` seen for `name`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.error is not None:
                    raise RuntimeError(f"watch of {self.path} failed: {self.error}")
                hits = [(t, v) for v, t in self.seen.get(name, {}).items() if v in values]
                if hits:
                    t, v = min(hits)
                    return v, t
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.objects.get(name, {}).get("status")
                    raise TimeoutError(
                        f"{name}: none of {values} within {timeout:.0f}s; "
                        f"last status {json.dumps(last)[:600]}"
                    )
                self.cond.wait(left)
