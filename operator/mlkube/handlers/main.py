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
    endpoint_pods,
    endpoint_rollout,
    environment,
    environment_users,
    environment_webhooks,
    event_sinks,
    health,
    leadership,
    log_noise,
    metrics,
    model,
    notifications,
    periodic,
    pipeline,
    pipeline_run,
    settings,
    webhooks,
)

HANDLER_MODULES = (
    settings, health, leadership, metrics, periodic, model, webhooks, endpoint, endpoint_pods,
    endpoint_drift, endpoint_rollout, batch_endpoint, batch_job, pipeline_run, pipeline,
    notifications, event_sinks, environment, environment_webhooks, environment_users,
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
    if level != "debug":
        log_noise.quiet_watch_successes()
    if level == "error":
        logging.getLogger().setLevel(logging.ERROR)


def run(
    *,
    namespaces: list[str] | None,
    liveness: str | None,
    standalone: bool,
    leader_election: bool = False,
) -> int:
    """Run the operator until interrupted (the `mlkube operator` command); the exit code.
    With `leader_election`, every replica serves the webhooks and the Lease holder reconciles
    (handlers/leadership.py); Kopf's own peering stays off either way."""
    configure_logging(os.environ.get("MLKUBE_LOG_LEVEL", "info").strip().lower() or "info")
    if os.environ.get("MLKUBE_MEMORY_PROBE"):  # a debugging knob, off by default
        from mlkube.handlers import memory_probe

        memory_probe.install_from_env()
    if os.environ.get("MLKUBE_MEMORY_PROBE_EVERY"):  # registers its startup handler
        from mlkube.handlers import memory_timeline  # noqa: F401
    kopf_args = {
        "clusterwide": not namespaces,
        "namespaces": namespaces or (),
        "liveness_endpoint": liveness,
        "standalone": standalone or leader_election,
    }
    if leader_election:
        return asyncio.run(leadership.run_elected(kopf_args, leadership.ElectionConfig.from_env()))
    asyncio.run(kopf.operator(**kopf_args))  # type: ignore[arg-type]
    return 0
