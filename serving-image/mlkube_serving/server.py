"""`python -m mlkube_serving serve`: uvicorn (uvloop + httptools) with N worker processes.

The parent process writes the settings into the environment (workers are spawned and read it),
prepares the Prometheus multiprocess directory, serves the merged metrics on the metrics port,
then supervises the workers. uvicorn gives graceful shutdown on SIGTERM (stop accepting, finish
in-flight requests within the grace period, run the lifespan shutdown).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import math
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from mlkube_serving.errors import ServingError
from mlkube_serving.settings import ENV_NAMES, Settings, settings_from_env, settings_to_env

APP_FACTORY = "mlkube_serving.worker:create_app"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client at import time
STARTUP_FAILURE = 3  # uvicorn's exit code when a worker cannot start

# CLI option -> Settings field; every option also has the env var named in settings.ENV_NAMES.
_OPTIONS: list[tuple[str, str, type, str]] = [
    ("--model-dir", "model_dir", str, "model file or directory"),
    ("--name", "model_name", str, "model name in URLs"),
    ("--version", "model_version", str, "model version in URLs"),
    ("--framework", "framework", str, "sklearn|onnx|mlflow|custom|scoring_script|seldon"),
    ("--host", "host", str, "address to listen on"),
    ("--port", "http_port", int, "HTTP port"),
    ("--metrics-port", "metrics_port", int, "Prometheus port"),
    ("--grpc-port", "grpc_port", int, "Open Inference Protocol gRPC port (0: off)"),
    ("--workers", "workers", int, "worker processes"),
    ("--request-timeout", "request_timeout", float, "seconds per request"),
    ("--max-concurrency", "max_concurrency", int, "in-flight requests per worker (then 429)"),
    ("--max-body-bytes", "max_body_bytes", int, "largest request body (then 413)"),
    ("--max-queued-bytes", "max_queued_bytes", int, "bytes of bodies held at once (then 503)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlkube_serving serve",
        description="Serve a model over V2, KServe V1, Seldon and Azure ML protocols.",
    )
    defaults = Settings()
    for flag, field, kind, text in _OPTIONS:
        parser.add_argument(
            flag,
            dest=field,
            type=kind,
            default=None,
            help=f"{text} (env {ENV_NAMES[field]}, default {getattr(defaults, field)})",
        )
    return parser


def parse_settings(argv: Sequence[str] | None) -> Settings:
    """Settings from the environment, overridden by command-line options."""
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return dataclasses.replace(settings_from_env(), **overrides)


def _log_config() -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlkube_serving"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def _prepare_metrics(settings: Settings) -> None:
    # A single in-process worker can use the plain registry when prometheus_client was
    # imported before us (e.g. by a CLI); spawned workers always import it after the env is set.
    if (
        settings.workers == 1
        and "prometheus_client" in sys.modules
        and not os.environ.get(MULTIPROC_ENV)
    ):
        return
    directory = os.environ.setdefault(
        MULTIPROC_ENV, os.path.join(tempfile.gettempdir(), f"mlkube-metrics-{os.getpid()}")
    )
    from mlkube_serving import metrics

    metrics.reset_multiprocess_dir(directory)


def run(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from mlkube_serving.inline_protocol import protocol_class

    os.environ.update(settings_to_env(settings))
    _prepare_metrics(settings)
    from mlkube_serving import metrics

    try:
        metrics.serve(settings.metrics_port, settings.host)
    except OSError as exc:
        logging.getLogger(__name__).error(
            "cannot listen for metrics on %s:%s: %s", settings.host, settings.metrics_port, exc
        )
        return 1
    config = uvicorn.Config(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.http_port,
        workers=settings.workers,
        loop="uvloop",
        http=protocol_class(),  # httptools, plus the inline lane for small inference
        lifespan="on",
        access_log=False,
        log_config=_log_config(),
        timeout_graceful_shutdown=math.ceil(settings.graceful_shutdown),
        backlog=2048,
    )
    server = uvicorn.Server(config)
    if settings.workers == 1:
        config.load_app()
        # uvicorn re-raises the stop signal after its graceful shutdown, restoring the previous
        # handler first; with a no-op handler in place a clean shutdown exits 0, not -15.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: None)
        server.run()
        return 0 if server.started else STARTUP_FAILURE
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return STARTUP_FAILURE if failed else 0


def _free_port_near(preferred: int) -> int:
    """`preferred` when it is free on loopback, else any free port (local runs only)."""
    for candidate in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port for metrics")


def run_local(model_path: str, port: int, workers: int = 1, name: str | None = None) -> None:
    """Serve a local model file or directory on 127.0.0.1 (used by `mlkube serve`)."""
    base = os.path.basename(os.path.normpath(model_path))
    settings = dataclasses.replace(
        settings_from_env(),
        model_dir=os.path.abspath(model_path),
        model_name=name or os.path.splitext(base)[0] or "model",
        host="127.0.0.1",
        http_port=port,
        metrics_port=_free_port_near(port + 2),
        workers=workers,
    )
    logging.getLogger(__name__).info(
        "metrics on http://127.0.0.1:%s/metrics", settings.metrics_port
    )
    code = run(settings)
    if code:
        raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = parse_settings(argv)
    except ServingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return run(settings)
