"""What the Environment controller needs besides the Kube API, as small protocols.

The registry (tag -> digest, a reusable `build-<key32>` tag with its config labels) is
reached through `mlkube.oci` (controllers/environment_oci.py), pod logs through the API
server's `pods/log`. The handler layer wires the real ones (handlers/environment_wiring.py);
unit tests pass in-memory ones, so every path of the controller runs without a registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mlkube.builders.operator_config import OperatorConfig
from mlkube.controllers.errors import ControllerError

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class EnvironmentOutcome:
    """Merge `status` into the Environment's status, post `events`; with `retry_delay`, run
    the pass again after that many seconds."""

    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    retry_message: str | None = None
    retry_delay: float | None = None


class RegistryError(ControllerError):
    """The registry could not answer (unreachable, 5xx, refused credentials): may pass;
    `permanent` when asking again cannot help (an invalid reference)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Registry(Protocol):
    def digest(self, reference: str) -> str | None:
        """The manifest digest `reference` (a tag or a digest) names, None when the registry
        says it does not exist (404); RegistryError when it cannot say."""
        ...

    def existing_build(self, repository: str, key: str) -> dict[str, Any] | None:
        """The status facts of the image tagged `build-<key32>` in `repository` for this very
        key (image, imageDigest, sizeBytes, packages, python, serving, packagedModel, from
        its config labels), None when there is none; RegistryError when it cannot say."""
        ...


class PodLogs(Protocol):
    def __call__(self, namespace: str, pod: str, container: str) -> str:
        """A container's log (`pods/log`); ControllerError when it cannot be read."""
        ...


@dataclass(frozen=True)
class Deps:
    """The operator config (build settings in `config.build`), the build namespace, the
    registry and the pod log reader."""

    config: OperatorConfig
    namespace: str
    registry: Registry
    logs: PodLogs

    @property
    def repository(self) -> str:
        """`host[:port]/<prefix>/environments` (only asked for with a registry configured)."""
        return self.config.build.image_repository() or ""
