"""What each uvicorn worker process runs: build the app from the environment, load on startup.

uvicorn spawns workers and imports `create_app` in each, so configuration arrives through
environment variables (see settings.py). The model is loaded and warmed up in the ASGI lifespan
startup, before uvicorn accepts connections in that worker: a worker is ready only with a
loaded model.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Mapping
from typing import Any

from mlkube import contract as c
from mlkube_serving import metrics
from mlkube_serving.app import ServingApp
from mlkube_serving.dataplane import DataPlane
from mlkube_serving.drift_gate import SampleGate
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_spool import SpoolHook
from mlkube_serving.payload_log import LogConfig, PayloadLogger, redact_names
from mlkube_serving.runtimes import create_runtime
from mlkube_serving.settings import Settings, settings_from_env

log = logging.getLogger(__name__)
GRPC_GRACE_SECONDS = 5.0  # after uvicorn drained HTTP, within the pod's termination grace


def make_drift_hook(settings: Settings) -> DriftHook | None:
    """A drift hook when a sidecar URL and a positive sample rate are configured: over the
    shared-memory spool when its directory is set (and usable), else over HTTP."""
    if not settings.drift_url or settings.drift_sample_rate <= 0:
        return None
    if settings.drift_spool_dir:
        ring_bytes = c.DRIFT_SPOOL_RING_MIB * 1024 * 1024
        try:
            return SpoolHook(settings.drift_url, settings.drift_sample_rate,
                             settings.drift_spool_dir, ring_bytes=ring_bytes)  # fmt: skip
        except OSError as exc:  # a full or missing volume: samples still reach the sidecar
            log.warning("drift spool %s unusable (%s): sending samples over HTTP",
                        settings.drift_spool_dir, exc)  # fmt: skip
    return DriftHook(settings.drift_url, settings.drift_sample_rate)


def make_drift_sampling(settings: Settings) -> tuple[DriftHook | None, SampleGate | None]:
    """The drift hook and, below 100%, the gate that samples for it by time slot
    (drift_gate.py: a coin per request cost more than the samples it skipped)."""
    hook = make_drift_hook(settings)
    if hook is None or hook.sample_rate >= 1.0:
        return hook, None
    gate = SampleGate(hook, hook.sample_rate)
    hook.rate = 1.0  # the gate picks the requests; the hook keeps every one it is shown
    return hook, gate


def make_payload_logger(settings: Settings, environ: Mapping[str, str]) -> PayloadLogger | None:
    """A payload logger when a sink URL and a positive sample rate are configured."""
    if not settings.payload_log_url or settings.payload_log_sample_rate <= 0:
        return None
    key = environ.get(c.ENV_PAYLOAD_LOG_SIGNING_KEY, "")
    try:
        config = LogConfig(
            url=settings.payload_log_url,
            mode=settings.payload_log_mode,
            rate=settings.payload_log_sample_rate,
            redact=redact_names(settings.payload_log_redact),
            encoding=settings.payload_log_encoding,
            endpoint=settings.payload_log_endpoint,
            deployment=settings.payload_log_deployment,
            namespace=settings.payload_log_namespace,
            # fsencode: the Secret's bytes as they were (a random key need not be UTF-8)
            signing_key=os.fsencode(key) if key else None,
        )
    except ValueError as exc:  # best-effort: a bad setting turns logging off, not the server
        log.error("payload logging off: %s", exc)
        return None
    return PayloadLogger(config)


def build_app(settings: Settings, environ: Mapping[str, str] | None = None) -> ServingApp:
    """The app for `settings`; the model loads when the ASGI lifespan starts."""
    hook, gate = make_drift_sampling(settings)
    payload_log = make_payload_logger(settings, os.environ if environ is None else environ)
    dataplane = DataPlane(sink=hook if gate is None else None)
    servers: list[Any] = []  # the gRPC server, once started

    async def startup(app: ServingApp) -> None:
        runtime = create_runtime(settings.model_dir, settings.framework)
        entry = await asyncio.to_thread(
            dataplane.load_model, settings.model_name, settings.model_version, runtime
        )
        metrics.record_model(
            entry.name, runtime.framework, runtime.active_runtime, entry.load_seconds
        )
        # Everything allocated so far lives as long as the process: keep it out of the
        # collector's generations so a full collection never walks the model's objects.
        gc.collect()
        gc.freeze()
        if hook is not None:
            hook.start()
        if gate is not None:
            gate.attach(dataplane)
        if payload_log is not None:
            payload_log.start()
        if settings.grpc_port:
            # Imported only when used: grpcio costs memory and start-up time otherwise.
            from mlkube_serving.protocols.grpc_service import start_server

            servers.append(await start_server(app, settings.host, settings.grpc_port))

    async def shutdown(app: ServingApp) -> None:
        if gate is not None:
            gate.detach()
        if hook is not None:
            await hook.stop()
        try:
            for server in servers:  # HTTP already drained: a short grace for gRPC calls
                await server.stop(min(settings.graceful_shutdown, GRPC_GRACE_SECONDS))
        finally:
            if payload_log is not None:
                await payload_log.stop()

    return ServingApp(dataplane, settings, on_startup=startup, on_shutdown=shutdown,
                      payload_log=payload_log)  # fmt: skip


def create_app() -> ServingApp:
    """uvicorn factory (`mlkube_serving.worker:create_app`)."""
    return build_app(settings_from_env())
