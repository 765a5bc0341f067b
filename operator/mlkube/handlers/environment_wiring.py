"""The Environment controller's real ports: the registry client and the pod log reader.

Built once per process from the operator config (docs/environments.md §2.3). The
registry client talks plain HTTP only to the build registry when it is marked insecure, and
uses the push Secret's credentials (read by name from the build namespace) for the build
registry's tags; other registries (an `image:` tag, an image base) are asked anonymously
unless the same Secret has credentials for them.
"""

from __future__ import annotations

import base64
import functools

from mlkube.builders.build_config import build_namespace
from mlkube.controllers.environment_oci import OciRegistry
from mlkube.controllers.environment_ports import Deps, PodLogs
from mlkube.controllers.errors import ControllerError
from mlkube.handlers.clients import kube
from mlkube.handlers.config import operator_config
from mlkube.handlers.webhooks import WebhookConfig
from mlkube.k8s import ApiError
from mlkube.oci.auth import Credentials, parse_docker_config
from mlkube.oci.client import Client


class PodLogError(ControllerError):
    """A build container's log could not be read."""


def pod_logs() -> PodLogs:
    def read(namespace: str, pod: str, container: str) -> str:
        try:
            return kube().pod_log(namespace, pod, container)
        except ApiError as err:
            raise PodLogError(
                f"cannot read the log of {namespace}/{pod} {container}: {err}"
            ) from err

    return read


def push_credentials(secret: str | None, namespace: str) -> dict[str, Credentials]:
    """The push Secret's registry credentials (read by name; none without one)."""
    if not secret:
        return {}
    obj = kube().get("v1", "Secret", secret, namespace) or {}
    data = (obj.get("data") or {}).get(".dockerconfigjson")
    return parse_docker_config(base64.b64decode(data)) if data else {}


@functools.cache
def environment_deps() -> Deps:
    config = operator_config()
    namespace = build_namespace(config.build, WebhookConfig.from_env().namespace)
    host = config.build.registry or ""
    client = Client(
        credentials=push_credentials(config.build.push_secret, namespace),
        insecure=[host] if config.build.registry_insecure and host else [],
        timeout=20.0,
    )
    return Deps(config=config, namespace=namespace, registry=OciRegistry(client), logs=pod_logs())
