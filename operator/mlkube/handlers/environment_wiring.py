"""The Environment controller's real ports: the registry client and the pod log reader.

Built from the operator config (docs/environments.md §2.3) and rebuilt every minute, so a
push Secret created or rotated after the operator started is used without a restart. The
registry client talks plain HTTP only to the build registry when it is marked insecure, and
uses the push Secret's credentials (read by name from the build namespace) for the build
registry's tags; other registries (an `image:` tag, an image base) are asked anonymously
unless the same Secret has credentials for them.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Final

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
from mlkube.oci.errors import OciError

DEPS_SECONDS: Final = 60.0


class PodLogError(ControllerError):
    """A build container's log could not be read."""


class PushSecretError(ControllerError):
    """The push Secret holds no usable docker config (its content is never shown)."""


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
    try:
        return parse_docker_config(base64.b64decode(data)) if data else {}
    except (OciError, ValueError) as err:
        raise PushSecretError(f"push Secret {namespace}/{secret}: {err}") from err


class _Deps:
    """`environment_deps()`: the ports, rebuilt when older than DEPS_SECONDS (the push Secret
    re-read); `cache_clear()` for tests that change the operator config."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: tuple[float, Deps] | None = None

    def __call__(self) -> Deps:
        with self._lock:
            if self._built and time.monotonic() - self._built[0] < DEPS_SECONDS:
                return self._built[1]
            deps = _make_deps()
            self._built = (time.monotonic(), deps)
            return deps

    def cache_clear(self) -> None:
        with self._lock:
            self._built = None


environment_deps: Final = _Deps()


def _make_deps() -> Deps:
    config = operator_config()
    namespace = build_namespace(config.build, WebhookConfig.from_env().namespace)
    host = config.build.registry or ""
    client = Client(
        credentials=push_credentials(config.build.push_secret, namespace),
        insecure=[host] if config.build.registry_insecure and host else [],
        timeout=20.0,
    )
    return Deps(config=config, namespace=namespace, registry=OciRegistry(client), logs=pod_logs())
