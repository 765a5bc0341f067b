"""Payload loggers that name an EventSink: read the sink (and its Service) on each pass.

The sink is read, not watched: a changed sink reaches the pods at the endpoint's next pass.
Its Secret is not read either: the pod takes the signing key through a secretKeyRef, so a
missing Secret shows as the pod's own configuration error."""

from __future__ import annotations

from typing import Any

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.builders.endpoint_logger import LogDestination
from mlkube.builders.endpoint_status import Blocker
from mlkube.builders.operator_config import OperatorConfig
from mlkube.contract import API_VERSION, KIND_EVENT_SINK
from mlkube.controllers.event_sink import resolve_url
from mlkube.controllers.kube import Kube


def logger_destinations(
    kube: Kube, namespace: str, spec: OnlineEndpointSpec, config: OperatorConfig
) -> tuple[dict[str, LogDestination], list[Blocker]]:
    """Deployment name -> its EventSink's destination; blockers for sinks it cannot use."""
    found: dict[str, LogDestination] = {}
    blockers: list[Blocker] = []
    cache: dict[str, dict[str, Any] | None] = {}
    for dep in spec.deployments:
        logger = dep.logger
        if logger is None or not logger.sink or logger.sample_rate <= 0:
            continue
        if logger.sink not in cache:
            cache[logger.sink] = kube.get(API_VERSION, KIND_EVENT_SINK, logger.sink, namespace)
        resolved = destination_of_sink(kube, namespace, logger.sink, cache[logger.sink], config)
        if isinstance(resolved, Blocker):
            blockers.append(resolved)
        else:
            found[dep.name] = resolved
    return found, blockers


def destination_of_sink(
    kube: Kube,
    namespace: str,
    name: str,
    sink: dict[str, Any] | None,
    config: OperatorConfig,
) -> LogDestination | Blocker:
    """What the server needs from EventSink `name`, or why it cannot log there: a sink not
    created yet is waited for, one whose spec cannot be used needs a human (degraded)."""
    shown = f"logger sink: EventSink {namespace}/{name}"
    if sink is None:  # retried: GitOps tools apply the sink and the endpoint in any order
        return Blocker("LoggerSinkNotFound", f"{shown} does not exist")
    spec = sink.get("spec") or {}
    if spec.get("format") == "azureml":
        why = "has format azureml, which carries only Azure ML's event types"
        return Blocker("LoggerSinkUnusable", f"{shown} {why}: use a cloudevents sink", True)
    url = resolve_url(kube, spec, namespace, config.cluster_domain)
    if not isinstance(url, str):
        return Blocker("LoggerSinkUnusable", f"{shown}: {url.message}", degraded=True)
    if not url.startswith("http://"):
        why = "payload logging posts plain HTTP (an in-cluster collector)"
        return Blocker("LoggerSinkUnusable", f"{shown} sends to {url}: {why}; use an http:// "
                       "sink", True)  # fmt: skip
    ref = (spec.get("signing") or {}).get("secretRef") or {}
    secret = (str(ref["name"]), str(ref["key"])) if ref.get("name") and ref.get("key") else None
    encoding = "structured" if spec.get("mode") == "structured" else "binary"
    return LogDestination(url, encoding, secret)
