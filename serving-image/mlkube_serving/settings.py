"""Server settings: read from environment variables (how Kubernetes pods configure it).

The CLI writes its options into the same variables before starting uvicorn, so worker processes
(spawned, not forked) and the parent all see one configuration from one source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from mlkube import contract as c
from mlkube_serving.errors import ServingError

ENV_INLINE_MAX_BYTES = "MLKUBE_INLINE_MAX_BYTES"


class SettingsError(ServingError):
    """A setting has a value that cannot be used."""

    status = 500


@dataclass(frozen=True)
class Settings:
    """Everything `serve` needs; each field has one environment variable."""

    model_dir: str = c.MODEL_DIR
    model_name: str = "model"
    model_version: str | None = None
    framework: str | None = None
    host: str = "0.0.0.0"
    http_port: int = c.SERVER_HTTP_PORT
    metrics_port: int = c.SERVER_METRICS_PORT
    grpc_port: int = 0  # the Open Inference Protocol over gRPC; 0: off
    workers: int = 1
    request_timeout: float = 60.0
    max_concurrency: int = 256
    max_body_bytes: int = 32 * 1024 * 1024
    graceful_shutdown: float = 20.0
    drift_url: str | None = None
    drift_sample_rate: float = 0.1
    drift_spool_dir: str | None = None
    # Bodies up to this size are served on the event loop; larger ones go to a thread.
    inline_max_bytes: int = 256 * 1024
    # Bytes of bodies queued for or running in the thread at once (503 past it); 0 derives it
    # from the container memory limit (a quarter of it, at most 256 MiB).
    max_queued_bytes: int = 0
    # Adaptive batching of V2 requests (batching.py): off below 2 rows.
    max_batch_size: int = 0
    max_batch_latency_ms: float = 5.0
    # Payload logging (payload_log.py); the signing key is read from its own variable, never
    # kept here (settings are logged and copied into worker environments).
    payload_log_url: str | None = None
    payload_log_mode: str = "all"
    payload_log_sample_rate: float = 1.0
    payload_log_redact: str = ""
    payload_log_encoding: str = "binary"
    payload_log_endpoint: str = ""
    payload_log_deployment: str = ""
    payload_log_namespace: str = ""


ENV_NAMES: dict[str, str] = {
    "model_dir": c.ENV_MODEL_DIR,
    "model_name": c.ENV_MODEL_NAME,
    "model_version": c.ENV_MODEL_VERSION,
    "framework": c.ENV_FRAMEWORK,
    "host": c.ENV_HTTP_HOST,
    "http_port": c.ENV_HTTP_PORT,
    "metrics_port": c.ENV_METRICS_PORT,
    "grpc_port": c.ENV_GRPC_PORT,
    "workers": c.ENV_WORKERS,
    "request_timeout": c.ENV_REQUEST_TIMEOUT,
    "max_concurrency": c.ENV_MAX_CONCURRENCY,
    "max_body_bytes": c.ENV_MAX_BODY_BYTES,
    "graceful_shutdown": c.ENV_GRACEFUL_SHUTDOWN,
    "drift_url": c.ENV_DRIFT_URL,
    "drift_sample_rate": c.ENV_DRIFT_SAMPLE_RATE,
    "drift_spool_dir": c.ENV_DRIFT_SPOOL_DIR,
    "inline_max_bytes": ENV_INLINE_MAX_BYTES,
    "max_queued_bytes": c.ENV_MAX_QUEUED_BYTES,
    "max_batch_size": c.ENV_MAX_BATCH_SIZE,
    "max_batch_latency_ms": c.ENV_MAX_BATCH_LATENCY_MS,
    "payload_log_url": c.ENV_PAYLOAD_LOG_URL,
    "payload_log_mode": c.ENV_PAYLOAD_LOG_MODE,
    "payload_log_sample_rate": c.ENV_PAYLOAD_LOG_RATE,
    "payload_log_redact": c.ENV_PAYLOAD_LOG_REDACT,
    "payload_log_encoding": c.ENV_PAYLOAD_LOG_ENCODING,
    "payload_log_endpoint": c.ENV_PAYLOAD_LOG_ENDPOINT,
    "payload_log_deployment": c.ENV_PAYLOAD_LOG_DEPLOYMENT,
    "payload_log_namespace": c.ENV_PAYLOAD_LOG_NAMESPACE,
}
_POSITIVE = {"workers", "max_concurrency", "max_body_bytes", "request_timeout"}


def _convert(name: str, kind: type, raw: str) -> object:
    try:
        value = kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} is not a valid {kind.__name__}") from exc
    if name in _POSITIVE and value <= 0:
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} must be positive")
    if name == "max_batch_size" and not (value in (0, 1) or 2 <= value <= c.MAX_BATCH_ROWS):
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} must be 0 (off) or 2..{c.MAX_BATCH_ROWS}")
    if name == "max_batch_latency_ms" and not 0 < value <= 10_000:
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} must be in (0, 10000] milliseconds")
    if name == "grpc_port" and not 0 <= value <= 65535:
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} must be a port (0: off)")
    if name == "max_queued_bytes" and value < 0:
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} must be >= 0 (0: derived)")
    if name == "payload_log_mode" and value not in ("all", "request", "response"):
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} must be all, request or response")
    if name == "payload_log_encoding" and value not in ("binary", "structured"):
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} must be binary or structured")
    if name in ("drift_sample_rate", "payload_log_sample_rate") and not 0.0 <= value <= 1.0:
        raise SettingsError(f"{ENV_NAMES[name]}={raw!r} must be between 0 and 1")
    return value


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment; unset or empty variables keep the defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    defaults = Settings()
    for spec in fields(Settings):
        raw = env.get(ENV_NAMES[spec.name], "").strip()
        if not raw:
            continue
        default = getattr(defaults, spec.name)
        kind = type(default) if default is not None else str
        values[spec.name] = _convert(spec.name, kind, raw)
    return Settings(**values)  # type: ignore[arg-type]


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce `settings` (None fields are left out)."""
    env = {}
    for spec in fields(Settings):
        value = getattr(settings, spec.name)
        if value is not None:
            env[ENV_NAMES[spec.name]] = str(value)
    return env
