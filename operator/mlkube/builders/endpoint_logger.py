"""Payload logging of a deployment: where its model server sends request/response CloudEvents.

A logger with a `url` is built from the spec alone; one naming an EventSink needs the sink read
first (`controllers/endpoint_logger.py`), which turns it into a `LogDestination` or a reason it
cannot be used. The signing key never enters the pod spec: the server reads it from the
EventSink's Secret through a secretKeyRef.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlkube import contract as c
from mlkube.api.endpoint import OnlineDeployment
from mlkube.builders.names import EndpointRef
from mlkube.builders.pods import number_text


@dataclass(frozen=True)
class LogDestination:
    """A resolved payload log sink: its URL, CloudEvents mode and signing Secret key."""

    url: str
    encoding: str = "binary"  # binary | structured (the EventSink's mode)
    signing_secret: tuple[str, str] | None = None  # (Secret name, key) in the namespace


def destination_of(
    dep: OnlineDeployment, resolved: Mapping[str, LogDestination] | None
) -> LogDestination | None:
    """Where `dep` logs to: its `url`, or its EventSink as resolved; None when it does not
    log (or its sink is not resolved, e.g. a local run that reads no EventSinks)."""
    logger = dep.logger
    if logger is None or logger.sample_rate <= 0:
        return None
    if logger.url:
        return LogDestination(logger.url)
    return (resolved or {}).get(dep.name)


def logger_env(
    owner: EndpointRef, dep: OnlineDeployment, destination: LogDestination
) -> list[dict[str, Any]]:
    """The model server's payload logging variables for `destination`."""
    logger = dep.logger
    assert logger is not None
    values = {
        c.ENV_PAYLOAD_LOG_URL: destination.url,
        c.ENV_PAYLOAD_LOG_MODE: logger.mode,
        c.ENV_PAYLOAD_LOG_RATE: number_text(logger.sample_rate),
        c.ENV_PAYLOAD_LOG_ENCODING: destination.encoding,
        c.ENV_PAYLOAD_LOG_ENDPOINT: owner.name,
        c.ENV_PAYLOAD_LOG_DEPLOYMENT: dep.name,
        c.ENV_PAYLOAD_LOG_NAMESPACE: owner.namespace,
    }
    if logger.redact:
        values[c.ENV_PAYLOAD_LOG_REDACT] = ",".join(sorted(logger.redact))
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in values.items()]
    if destination.signing_secret is not None:
        name, key = destination.signing_secret
        env.append({
            "name": c.ENV_PAYLOAD_LOG_SIGNING_KEY,
            "valueFrom": {"secretKeyRef": {"name": name, "key": key}},
        })  # fmt: skip
    return env
