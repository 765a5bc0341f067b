"""The EventSink a listener registers for itself, and the sink verbs' API access.

The name is derived from the host and port (`mlkube-listen-<hash>`): a listener restarted on the
same port takes over its own sink (server-side apply) instead of leaving one more behind, and two
listeners on different ports never overwrite each other's. The sink is labelled, so
`kubectl delete eventsinks -l mlkube.dev/listener` removes any left by a killed listener.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Final

from mlkube.cli.errors import CliError
from mlkube.contract import API_VERSION, GROUP, KIND_EVENT_SINK, PLURAL_EVENT_SINKS
from mlkube.events.catalogue import EVENT_TYPES, type_matches
from mlkube.k8s import ApiError, Kube

FIELD_MANAGER: Final = "mlkube-cli"
NAME_PREFIX: Final = "mlkube-listen-"
LABEL_LISTENER: Final = "mlkube.dev/listener"
ANNOTATION_HOST: Final = "mlkube.dev/listener-host"
# As the EventSink CRD checks it (api/event_sink.py TYPE_PATTERN).
TYPE_PATTERN: Final = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?\*?$")


def sink_name(host: str, port: int) -> str:
    digest = hashlib.sha256(f"{host}:{port}".encode()).hexdigest()
    return NAME_PREFIX + digest[:10]


def check_types(patterns: Sequence[str]) -> list[str]:
    """The --types patterns, refused when malformed or when they match no catalogue type (a
    typo would otherwise listen forever to nothing)."""
    for pattern in patterns:
        if not TYPE_PATTERN.match(pattern):
            raise CliError(
                f"--types {pattern!r}: use a type (dev.mlkube.model.registered.v1) or a prefix "
                "ending in * (dev.mlkube.rollout.*)"
            )
        if not any(type_matches(t, [pattern]) for t in EVENT_TYPES):
            raise CliError(
                f"--types {pattern!r} matches no event type mlkube emits "
                "(see `mlkube events types`)"
            )
    return list(dict.fromkeys(patterns))


def build_sink(
    name: str,
    namespace: str,
    uri: str,
    *,
    host: str,
    types: Sequence[str] = (),
    mode: str = "binary",
    format: str = "cloudevents",
) -> dict[str, Any]:
    """The listener's EventSink: no retries worth waiting for (a listener that is gone is
    gone), a short timeout, no dead letter sink."""
    spec: dict[str, Any] = {
        "uri": uri,
        "types": list(types),
        "mode": mode,
        "format": format,
        "delivery": {"retry": 3, "backoffPolicy": "exponential", "backoffDelay": "PT0.5S",
                     "timeout": "PT5S"},
    }  # fmt: skip
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_EVENT_SINK,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_LISTENER: "true", "app.kubernetes.io/managed-by": "mlkube-cli"},
            "annotations": {ANNOTATION_HOST: host},
        },
        "spec": spec,
    }


def sink_error(err: ApiError, action: str) -> CliError:
    if err.status == 404 and err.reason == "KindNotServed":
        return CliError(
            f"cannot {action}: the EventSink CRD ({PLURAL_EVENT_SINKS}.{GROUP}) is not "
            "installed on this cluster (install the mlkube chart or apply crds/)"
        )
    if err.status == 403:
        return CliError(f"cannot {action}: not allowed ({err}); ask for rights on eventsinks")
    return CliError(f"cannot {action}: {err}")


def apply_sink(kube: Kube, sink: dict[str, Any]) -> dict[str, Any]:
    meta = sink["metadata"]
    try:
        return kube.apply(sink, field_manager=FIELD_MANAGER)
    except ApiError as err:
        raise sink_error(err, f"create EventSink {meta['namespace']}/{meta['name']}") from err


def get_sink(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    try:
        obj = kube.get(API_VERSION, KIND_EVENT_SINK, name, namespace)
    except ApiError as err:
        raise sink_error(err, f"get EventSink {namespace}/{name}") from err
    if obj is None:
        raise CliError(f"EventSink {namespace}/{name} not found")
    return obj


def list_sinks(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    try:
        return kube.list(API_VERSION, KIND_EVENT_SINK, namespace)
    except ApiError as err:
        raise sink_error(err, f"list EventSinks in {namespace}") from err


def delete_sink(kube: Kube, namespace: str, name: str, uid: str | None) -> bool:
    """Delete the listener's own sink (by uid: never one that replaced it); False if gone."""
    try:
        return kube.delete(API_VERSION, KIND_EVENT_SINK, name, namespace, uid=uid)
    except ApiError as err:
        if err.status == 409:
            return False  # another listener took the name over: its sink, not ours
        raise sink_error(err, f"delete EventSink {namespace}/{name}") from err
