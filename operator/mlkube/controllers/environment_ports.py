"""What the Environment controller needs besides the Kube API, as small protocols.

The registry (tag -> digest, a reusable `build-<key32>` tag, an image's config labels) is
reached through `mlkube.oci`; the build key and the build Job come from pure modules
(`reconcile/environment_key.py`, `builders/environment_build.py`); pod logs through the API
server's `pods/log`. The handler layer wires the real ones (handlers/environment_wiring.py);
unit tests pass in-memory ones, so every path of the controller runs without a registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

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

    def labels(self, reference: str) -> dict[str, str]:
        """The image config's labels (for a reused build: its package list)."""
        ...


class PodLogs(Protocol):
    def __call__(self, namespace: str, pod: str, container: str) -> str:
        """A container's log (`pods/log`); ControllerError when it cannot be read."""
        ...


class Planner(Protocol):
    """The pure build inputs: the content key and the objects that build it."""

    def key(self, obj: Mapping[str, Any], base_digest: str) -> str:
        """The build key (`sha256:…`, docs/environments.md §3) of `obj` built on `base_digest`."""
        ...

    def objects(
        self, obj: Mapping[str, Any], key: str, base_image: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The build Job and its inputs ConfigMap (which the controller makes owned by the Job)."""
        ...


@dataclass(frozen=True)
class Settings:
    """The operator settings the controller reads (§2.3)."""

    registry: str | None  # host[:port]/prefix; None: builds fail with NoRegistry
    namespace: str  # the build namespace
    curated: Mapping[str, str] = field(default_factory=dict)  # "mlkube-x:0.1.0" -> image


@dataclass(frozen=True)
class Deps:
    settings: Settings
    registry: Registry
    logs: PodLogs
    planner: Planner

    @property
    def repository(self) -> str:
        return f"{self.settings.registry}/environments"
