"""The Environment controller's real ports: registry client, pod logs, build planner, settings.

Built once per process from the operator's environment (docs/environments.md §2.3). The
registry client talks plain HTTP only to the build registry when it is marked insecure, and
uses the push Secret's credentials (read by name from the build namespace) for the build
registry's tags; other registries (an `image:` tag, an image base) are asked anonymously
unless the same Secret has credentials for them.
"""

from __future__ import annotations

import base64
import functools
import os

from mlkube.controllers.environment_oci import OciRegistry
from mlkube.controllers.environment_ports import Deps, Planner, PodLogs, Settings
from mlkube.controllers.errors import ControllerError
from mlkube.handlers.clients import kube
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


def environment_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    curated = {}
    for item in (env.get("MLKUBE_CURATED_ENVIRONMENTS") or "").split(","):
        name, _, image = item.strip().partition("=")
        if name and image:
            curated[name.strip()] = image.strip()
    return Settings(
        registry=(env.get("MLKUBE_BUILD_REGISTRY") or "").strip().rstrip("/") or None,
        namespace=env.get("MLKUBE_BUILD_NAMESPACE") or WebhookConfig.from_env(env).namespace,
        curated=curated,
    )


def push_credentials(namespace: str) -> dict[str, Credentials]:
    secret = os.environ.get("MLKUBE_BUILD_PUSH_SECRET")
    if not secret:
        return {}
    obj = kube().get("v1", "Secret", secret, namespace) or {}
    data = (obj.get("data") or {}).get(".dockerconfigjson")
    return parse_docker_config(base64.b64decode(data)) if data else {}


def planner() -> Planner:
    raise NotImplementedError  # wired to builders/environment_build.py when it lands


@functools.cache
def environment_deps() -> Deps:
    settings = environment_settings()
    insecure = os.environ.get("MLKUBE_BUILD_REGISTRY_INSECURE", "").lower() in ("1", "true")
    host = (settings.registry or "").split("/", 1)[0]
    client = Client(
        credentials=push_credentials(settings.namespace),
        insecure=[host] if insecure and host else [],
        timeout=20.0,
    )
    return Deps(settings=settings, registry=OciRegistry(client), logs=pod_logs(),
                planner=planner())  # fmt: skip
