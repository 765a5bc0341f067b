"""The status of an `Environment` (api/environment.py) and the record of the environment an
endpoint deployment, batch job or pipeline step ran with; apart so the kind stays small.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from mlkube.api.common import (
    MAX_SHORT_TEXT,
    ApiModel,
    Conditions,
    Digest,
    DnsLabel,
    LabelValue,
    Message,
    ShortText,
    Timestamp,
)

EnvironmentPhase = Literal["Pending", "Resolving", "Building", "Ready", "Failed"]
ENVIRONMENT_PHASES: tuple[str, ...] = get_args(EnvironmentPhase)
MAX_IMAGE_LENGTH = 512
MAX_PACKAGES = 2048


class BaseImage(ApiModel):
    """The base of a build: as written and pinned by digest."""

    reference: Annotated[str, Field(max_length=MAX_IMAGE_LENGTH)]
    """spec.build.base as written."""
    image: Annotated[str, Field(max_length=MAX_IMAGE_LENGTH)] | None = None
    """The image it resolved to, pinned by digest."""


class BuildRecord(ApiModel):
    """The build Job that made (or would have made) the image."""

    job: Annotated[str, Field(max_length=MAX_SHORT_TEXT)] | None = None
    """namespace/name of the build Job."""
    reused: bool = False
    """True when an identical build (same build key) was reused and no image was built."""
    start_time: Timestamp | None = None
    """When the build started."""
    completion_time: Timestamp | None = None
    """When the build finished."""
    duration_seconds: Annotated[float, Field(ge=0)] | None = None
    """How long the build took."""
    logs: Annotated[str, Field(max_length=1024)] | None = None
    """Where the build logs are, e.g. a kubectl logs command."""


class ServingContract(ApiModel):
    """Whether the image provides the mlkube serving entrypoint (docs/environments.md §4)."""

    compatible: bool
    """True when `python -m mlkube_serving` works in the image."""
    version: ShortText | None = None
    """mlkube-serving version found in the image."""
    message: Message | None = None
    """Why it is not compatible (the probe's error)."""


class PackagedModel(ApiModel):
    """The Model baked into the image (spec.model)."""

    name: Annotated[str, Field(max_length=253)]
    """Model object name."""
    artifact_digest: Digest | None = None
    """Digest of the packaged artifact, verified by the build."""


class EnvironmentUser(ApiModel):
    """An object that uses this environment."""

    kind: Annotated[str, Field(min_length=1, max_length=63)]
    """OnlineEndpoint, BatchEndpoint or Pipeline."""
    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Object name (same namespace)."""
    deployment: Annotated[str, Field(max_length=63)] | None = None
    """Deployment of the endpoint that uses it."""
    step: Annotated[str, Field(max_length=63)] | None = None
    """Pipeline step that uses it."""


class EnvironmentRecord(ApiModel):
    """Which environment an endpoint deployment, batch job or step ran with (for status)."""

    name: DnsLabel
    """Environment name."""
    version: LabelValue
    """Environment version (resolved, also for name@latest)."""
    image: Annotated[str, Field(max_length=MAX_IMAGE_LENGTH)]
    """The image used, pinned by digest."""


class EnvironmentStatus(ApiModel):
    """Observed state of the Environment, written by the operator only."""

    phase: EnvironmentPhase | None = None
    """Pending, Resolving, Building, Ready or Failed."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions = Field(default_factory=list)
    """Ready, Resolved, Built, plus Reconciling (working or retrying) and Stalled (failed)."""
    message: Message | None = None
    """Human-readable summary of the phase."""
    image: Annotated[str, Field(max_length=MAX_IMAGE_LENGTH)] | None = None
    """The environment's image, always pinned by digest (repository@sha256:...)."""
    image_digest: Digest | None = None
    """Manifest digest of the image."""
    resolved_from: Annotated[str, Field(max_length=MAX_IMAGE_LENGTH)] | None = None
    """spec.image as written, when it was a tag resolved to the digest."""
    base: BaseImage | None = None
    """The build's base image."""
    build_key: Digest | None = None
    """Content address of the build inputs; identical inputs reuse the image."""
    build: BuildRecord | None = None
    """The build Job, its timing and logs."""
    size_bytes: Annotated[int, Field(ge=0)] | None = None
    """Compressed size of all layers."""
    packages: Annotated[
        list[Annotated[str, Field(max_length=MAX_SHORT_TEXT)]], Field(max_length=MAX_PACKAGES)
    ] = Field(default_factory=list)
    """Python packages in the image (pip freeze), e.g. lightgbm==4.5.0."""
    python: Annotated[str, Field(max_length=32)] | None = None
    """Python version in the image."""
    serving: ServingContract | None = None
    """Whether the image can run the mlkube model server."""
    packaged_model: PackagedModel | None = None
    """The Model baked into the image (spec.model)."""
    used_by: Annotated[list[EnvironmentUser], Field(max_length=256)] = Field(default_factory=list)
    """Endpoints, batch endpoints and pipelines that reference this environment."""
