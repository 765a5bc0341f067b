"""The drift sidecar: raw ASGI under uvicorn, next to the model server in every serving pod.

`POST /v1/samples` answers 202 before doing any work, then parses the body with orjson and
queues it for the worker thread, so the model server's sender never waits on drift maths. The
model server's binary batches (`DRIFT_SAMPLES_BATCH_TYPE`) have their header validated first
(microseconds, no per-value work), so a malformed batch gets a 400 with its reason.
With `--spool-dir` (`MLKUBE_DRIFT_SPOOL_DIR`) the server's samples arrive through shared-memory
rings instead (`drift.spool`), drained on this loop every `--spool-interval` seconds.
`GET /v1/summary` returns the latest evaluation (the operator polls and merges it across
replicas), `/healthz` and `/readyz` are for the probes, and Prometheus metrics are served on a
separate port. Run as `python -m mlkube_serving drift-sidecar --profile PROFILE.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from mlkube import contract
from mlkube_serving._http.asgi import Receive, Scope, Send, read_body, respond, respond_error
from mlkube_serving._http.budget import MiB, derived_budget
from mlkube_serving._http.errors import (
    BadRequest,
    ClientDisconnected,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from mlkube_serving.drift.batch import batch_held_bytes
from mlkube_serving.drift.bodies import decode_samples
from mlkube_serving.drift.engine import DriftEngine
from mlkube_serving.drift.errors import DriftError, PayloadError
from mlkube_serving.drift.metrics import DEFAULT_MAX_FEATURE_SERIES, EvaluationTimes, serve_metrics
from mlkube_serving.drift.profile import load_profile, resolve_profile_path, select_features
from mlkube_serving.drift.spool import DEFAULT_INTERVAL, SpoolReader
from mlkube_serving.drift.worker import DriftWorker, held_bytes

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
_ACCEPTED = orjson.dumps({"accepted": True})


class DriftApp:
    """ASGI application over a started `DriftWorker`."""

    def __init__(
        self,
        worker: DriftWorker,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        spool: SpoolReader | None = None,
        spool_interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.worker = worker
        self.max_body_bytes = max_body_bytes
        self.spool = spool  # the model server's rings, drained on this loop
        self.spool_interval = spool_interval
        self._spool_task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == contract.DRIFT_SAMPLES_PATH and method == "POST":
            if not _from_loopback(scope):
                # Samples come from the model server in the same pod; anyone else could only
                # poison the statistics. The summary stays readable for the operator.
                await respond_error(send, Forbidden("samples are accepted from loopback only"))
                return
            if _content_type(scope) == contract.DRIFT_SAMPLES_BATCH_TYPE:
                await self._batch(receive, send)
            else:
                await self._samples(receive, send)
        elif path == contract.DRIFT_SUMMARY_PATH and method == "GET":
            await respond(send, 200, orjson.dumps(self.worker.current_summary()))
        elif path in ("/healthz", "/readyz") and method == "GET":
            await respond(send, 200, b'{"status":"ok"}')
        elif path in (
            contract.DRIFT_SAMPLES_PATH,
            contract.DRIFT_SUMMARY_PATH,
            "/healthz",
            "/readyz",
        ):
            await respond_error(send, MethodNotAllowed("method not allowed"))
        else:
            await respond_error(send, NotFound("not found"))

    async def _samples(self, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive, self.max_body_bytes)
        except ClientDisconnected:
            return
        except PayloadTooLarge as exc:
            await respond_error(send, exc)
            return
        await respond(send, 202, _ACCEPTED)  # the sender is free; the work starts now
        try:
            payload = orjson.loads(body)
            rows = payload["rows"]
            count = len(rows) if isinstance(rows, list) else 0
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.worker.invalid_payloads += 1
            return
        size = held_bytes(payload, len(body))
        del body  # the parsed payload is what stays held
        self.worker.submit(payload, count, size)

    async def _batch(self, receive: Receive, send: Send) -> None:
        """A binary batch: header checked before the 202, arrays queued as views of the body."""
        try:
            body = await read_body(receive, self.max_body_bytes)
        except ClientDisconnected:
            return
        except PayloadTooLarge as exc:
            await respond_error(send, exc)
            return
        try:
            batch = decode_samples(body)
        except PayloadError as exc:
            self.worker.invalid_payloads += 1
            await respond_error(send, BadRequest(str(exc)))
            return
        await respond(send, 202, _ACCEPTED)
        if batch.invalid:
            self.worker.count_invalid(batch.invalid)
        self.worker.submit(batch, batch.count, batch_held_bytes(batch, len(body)))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.worker.start()
                if self.spool is not None:
                    self._spool_task = asyncio.create_task(self.spool.run(self.spool_interval))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop_spool()
                self.worker.stop()
                log.info(
                    "drift sidecar stopped: %d rows received, %d dropped",
                    self.worker.received,
                    self.worker.dropped,
                )
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _stop_spool(self) -> None:
        """Stop polling, take what the rings hold now, close them (files stay for the next)."""
        if self._spool_task is None or self.spool is None:
            return
        self._spool_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._spool_task
        self.spool.poll()
        self.spool.close()


def _env_number(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags win over MLKUBE_DRIFT_* environment variables, which win over defaults."""
    env = _env_number
    parser = argparse.ArgumentParser(prog="mlkube_serving drift-sidecar", description=__doc__)
    parser.add_argument(
        "--profile",
        default=os.environ.get(contract.ENV_DRIFT_PROFILE),
        help="profile JSON file, or a directory holding exactly one .json file",
    )
    parser.add_argument(
        "--features",
        default=os.environ.get(contract.ENV_DRIFT_FEATURES, ""),
        help="comma-separated features to monitor (default: every profiled feature)",
    )
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=contract.DRIFT_PORT)
    parser.add_argument("--metrics-port", type=int, default=contract.DRIFT_METRICS_PORT)
    window = env(contract.ENV_DRIFT_WINDOW_SIZE, None)
    parser.add_argument("--window-size", type=int, default=None if window is None else int(window))
    parser.add_argument(
        "--eval-interval", type=float, default=env(contract.ENV_DRIFT_EVAL_INTERVAL, 5.0)
    )
    samples = env(contract.ENV_DRIFT_EVAL_SAMPLES, None)
    parser.add_argument(
        "--eval-samples", type=int, default=None if samples is None else int(samples)
    )
    series = env(contract.ENV_DRIFT_MAX_FEATURE_SERIES, DEFAULT_MAX_FEATURE_SERIES)
    parser.add_argument("--max-feature-series", type=int, default=int(series or 0))
    parser.add_argument("--queue-size", type=int, default=1024)
    parser.add_argument(
        "--max-queued-bytes",
        type=int,
        default=derived_budget(1 / 16, 64 * MiB),
        help="bytes held by queued payloads once parsed (default 1/16 of the memory limit "
        "published in MLKUBE_MEMORY_LIMIT_BYTES, at most 64 MiB)",
    )
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--spool-dir",
        default=os.environ.get(contract.ENV_DRIFT_SPOOL_DIR) or None,
        help="directory of the model server's shared-memory sample rings (polled)",
    )
    parser.add_argument("--spool-interval", type=float, default=DEFAULT_INTERVAL)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if not args.profile:
        parser.error(f"--profile or {contract.ENV_DRIFT_PROFILE} is required")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Load the profile, start the worker and the metrics port, serve until terminated."""
    import uvicorn  # lazy: tests build the app without a server

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        features = [name.strip() for name in args.features.split(",")]
        profile = select_features(load_profile(resolve_profile_path(args.profile)), features)
        engine = DriftEngine(profile, window_size=args.window_size)
    except DriftError as exc:
        log.error("%s", exc)
        return 2
    if args.window_size and args.window_size != profile["windowSize"]:
        log.warning(
            "window size %d differs from the profile's %d the thresholds were calibrated for",
            args.window_size,
            profile["windowSize"],
        )
    times = EvaluationTimes()
    worker = DriftWorker(
        engine,
        eval_interval=args.eval_interval,
        eval_samples=args.eval_samples,
        queue_size=args.queue_size,
        max_queued_bytes=args.max_queued_bytes,
        observe=times.observe,
    )
    metrics_server = serve_metrics(
        worker, times, host=args.host, port=args.metrics_port, max_series=args.max_feature_series
    )
    log.info(
        "drift sidecar for %s: %d features, window %d, port %d, metrics %d",
        profile.get("model"),
        len(engine.compiled.features),
        engine.window_size,
        args.port,
        args.metrics_port,
    )
    spool = None
    if args.spool_dir:
        spool = SpoolReader(Path(args.spool_dir), worker.submit, worker.count_invalid)
    app = DriftApp(
        worker, max_body_bytes=args.max_body_bytes, spool=spool, spool_interval=args.spool_interval
    )
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on"
    )
    try:
        uvicorn.Server(config).run()
    finally:
        metrics_server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def _content_type(scope: Scope) -> str:
    """The media type of a request (parameters such as charset stripped), lowercased."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return str(value.decode("latin-1").split(";", 1)[0].strip().lower())
    return ""


def _from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    host = str(client[0]) if client else ""
    return host.startswith("127.") or host in ("::1", "localhost")
