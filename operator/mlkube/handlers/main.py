"""Registers every handler (by importing its module) and runs the operator."""

from __future__ import annotations

import asyncio

import kopf

from mlkube.handlers import endpoint, endpoint_drift, health, model, periodic, settings, webhooks

HANDLER_MODULES = (settings, health, periodic, model, webhooks, endpoint, endpoint_drift)


def run(*, namespaces: list[str] | None, liveness: str | None, standalone: bool) -> None:
    """Run the operator until interrupted (the `mlkube operator` command)."""
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces or (),
            liveness_endpoint=liveness,
            standalone=standalone,
        )
    )
