"""Registers every handler (by importing its module) and runs the operator."""

from __future__ import annotations

import asyncio
import logging
import os

import kopf

from mlkube.handlers import (
    batch_endpoint,
    batch_job,
    endpoint,
    endpoint_drift,
    health,
    metrics,
    model,
    periodic,
    settings,
    webhooks,
)

HANDLER_MODULES = (
    settings, health, metrics, periodic, model, webhooks, endpoint, endpoint_drift, batch_endpoint,
    batch_job,
)  # fmt: skip


LOG_LEVELS = ("debug", "info", "warning", "error")


def log_flags(level: str) -> dict[str, bool]:
    """kopf.configure's flags for MLKUBE_LOG_LEVEL (the chart's `logLevel`)."""
    if level not in LOG_LEVELS:
        raise ValueError(f"MLKUBE_LOG_LEVEL={level!r}: use one of {', '.join(LOG_LEVELS)}")
    return {"debug": level == "debug", "quiet": level in ("warning", "error")}


def configure_logging(level: str) -> None:
    flags = log_flags(level)
    kopf.configure(debug=flags["debug"], quiet=flags["quiet"])
    if level == "error":
        logging.getLogger().setLevel(logging.ERROR)


def run(*, namespaces: list[str] | None, liveness: str | None, standalone: bool) -> None:
    """Run the operator until interrupted (the `mlkube operator` command)."""
    configure_logging(os.environ.get("MLKUBE_LOG_LEVEL", "info").strip().lower() or "info")
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces or (),
            liveness_endpoint=liveness,
            standalone=standalone,
        )
    )
