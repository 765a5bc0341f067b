"""The `Environment` kind: one version of a software environment, an image pinned by digest.

Either an existing `image` (a tag is resolved to a digest) or a `build` that appends pip/apt
packages, files and ENV to a base image (docs/environments.md §1-§2). A new version is a new
object, as for Model, so the whole spec but `description` is immutable; CEL enforces that, the
one-of and the reserved curated names for every client, the validators here mirror it for the
CLI. Endpoints, batch endpoints and pipeline steps name an Environment with `EnvironmentRef`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, field_validator, model_validator

from mlkube.api.common import (
    DNS_LABEL_PATTERN,
    LABEL_VALUE_PATTERN,
    MAX_SHORT_TEXT,
    ApiModel,
    Conditions,
    Digest,
    DnsLabel,
    EnvVar,
    LabelValue,
    Message,
    ShortText,
    Text,
    Timestamp,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.markers import ListMap, ListSet, Rule, immutable
from mlkube.contract import (
    CURATED_ENVIRONMENT_PREFIX,
    KIND_ENVIRONMENT,
    PLURAL_ENVIRONMENTS,
)

EnvironmentPhase = Literal["Pending", "Resolving", "Building", "Ready", "Failed"]
ENVIRONMENT_PHASES: tuple[str, ...] = get_args(EnvironmentPhase)

MAX_IMAGE_LENGTH = 512
MAX_PIP_LINES = 256
MAX_APT_PACKAGES = 64
MAX_FILES = 32
MAX_FILE_BYTES = 64 * 1024  # per file (CEL) and for all files together (validator, builder)
MAX_CONDA_LENGTH = 16 * 1024

MSG_ONE_SOURCE = "set exactly one of spec.image or spec.build"
MSG_RESERVED = (
    f"environment names starting with {CURATED_ENVIRONMENT_PREFIX!r} are reserved for the"
    " curated environments mlkube ships"
)
MSG_NAME_IMMUTABLE = "spec.environmentName is immutable: create a new Environment object"
MSG_VERSION_IMMUTABLE = (
    "spec.version is immutable: create a new Environment object for a new version"
)
MSG_SOURCE_IMMUTABLE = (
    "spec.image and spec.build are immutable: create a new Environment object for a new version"
)
MSG_MODEL_IMMUTABLE = "spec.model is immutable: create a new Environment object for a new version"
MSG_MODEL_NEEDS_BUILD = "spec.model (packaging a Model into the image) needs spec.build"
MSG_PIP_LINE = (
    "spec.build.pip holds requirement lines (e.g. lightgbm==4.5.0): pip options such as -r, -e"
    " or --index-url are not allowed (the operator configures the package index)"
)
MSG_APT_PACKAGE = "spec.build.apt holds Debian package names, optionally name=version"
MSG_FILE_PATH = "spec.build.files[].path must be an absolute file path without '..' segments"
MSG_FILES_TOTAL = f"spec.build.files may hold at most {MAX_FILE_BYTES} bytes of content in all"
MSG_RESERVED_ENV = "spec.build.env: names starting with MLKUBE_ are set by mlkube"
MSG_REFERENCE = (
    "an environment reference is NAME:VERSION (e.g. lgbm:1) or NAME@latest, with NAME a DNS label"
    " and VERSION a label value"
)

REFERENCE_PATTERN = (
    DNS_LABEL_PATTERN[:-1] + "(:" + LABEL_VALUE_PATTERN[1:-1] + "|@latest)$"
)  # fmt: skip
# No backslash classes: the pattern is also a CEL string literal, where only \t \r \n escape.
PIP_LINE_PATTERN = r"^[^- \t#][^\r\n]*$"
APT_PATTERN = r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$"
FILE_PATH_PATTERN = r"^/.*[^/]$"
NO_PARENT_SEGMENTS = "!self.matches('(^|/)[.][.](/|$)')"


def _check_reference(value: str) -> str:
    # Mirrors the CEL rule (a pattern alone would give the API server's generic message).
    if not re.match(REFERENCE_PATTERN, value):
        raise ValueError(MSG_REFERENCE)
    return value


EnvironmentRef = Annotated[
    str,
    Field(min_length=1, max_length=128),
    Rule(f"self.matches('{REFERENCE_PATTERN}')", message=MSG_REFERENCE),
    AfterValidator(_check_reference),
]
"""`name:version` or `name@latest` of an Environment (or a curated `mlkube-…:version`)."""


def parse_reference(ref: str) -> tuple[str, str | None]:
    """(name, version) of a reference; version None for `name@latest`."""
    if ref.endswith("@latest"):
        return ref.removesuffix("@latest"), None
    name, _, version = ref.partition(":")
    return name, version


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """The order `name@latest` picks the highest version by: numeric parts numerically ("10"
    after "9", "1.10" after "1.9"), other parts as text after numbers."""
    parts = [p for p in re.split(r"[._+-]", version) if p]
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


class EnvironmentFile(ApiModel):
    """A small file baked into the image (owned by root, read-only for the server user)."""

    path: Annotated[
        str,
        Field(min_length=2, max_length=1024),
        Rule(f"self.matches('{FILE_PATH_PATTERN}') && {NO_PARENT_SEGMENTS}", message=MSG_FILE_PATH),
    ]
    """Absolute path in the image, e.g. /opt/app/features.py."""
    content: Annotated[str, Field(max_length=MAX_FILE_BYTES)]
    """File content (text)."""
    mode: Annotated[int, Field(ge=0, le=0o777)] = 0o644
    """Permission bits, e.g. 0644 (420) or 0755 (493)."""

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not re.match(FILE_PATH_PATTERN, value) or ".." in value.split("/"):
            raise ValueError(MSG_FILE_PATH)
        return value


PipLine = Annotated[
    str,
    Field(min_length=1, max_length=1024),
    Rule(f"self.matches('{PIP_LINE_PATTERN}')", message=MSG_PIP_LINE),
]
AptPackage = Annotated[
    str,
    Field(min_length=2, max_length=256),
    Rule(f"self.matches('{APT_PATTERN}')", message=MSG_APT_PACKAGE),
]
BuildEnvVar = Annotated[EnvVar, Rule("!self.name.startsWith('MLKUBE_')", message=MSG_RESERVED_ENV)]


class EnvironmentBuild(ApiModel):
    """What the build appends to the base image as one new layer (docs/environments.md §2)."""

    base: Annotated[str, Field(min_length=1, max_length=MAX_IMAGE_LENGTH)]
    """A curated environment (mlkube-sklearn:0.1.0) or an image reference; pinned by digest."""
    pip: Annotated[list[PipLine], Field(max_length=MAX_PIP_LINES)] = Field(default_factory=list)
    """Requirement lines, as in requirements.txt (e.g. lightgbm==4.5.0)."""
    conda: Annotated[str, Field(min_length=1, max_length=MAX_CONDA_LENGTH)] | None = None
    """A conda environment.yml: python=X must match the base, its pip: list is installed."""
    apt: Annotated[list[AptPackage], ListSet(), Field(max_length=MAX_APT_PACKAGES)] = Field(
        default_factory=list
    )
    """Debian packages unpacked into the image (maintainer scripts never run)."""
    files: Annotated[list[EnvironmentFile], ListMap("path"), Field(max_length=MAX_FILES)] = Field(
        default_factory=list
    )
    """Small files written into the image (at most 64 KiB in all)."""
    env: Annotated[list[BuildEnvVar], ListMap("name"), Field(max_length=64)] = Field(
        default_factory=list
    )
    """Environment variables set in the image (ENV)."""

    @model_validator(mode="after")
    def _check(self) -> EnvironmentBuild:
        # Mirrors the CEL rules; the total size is checked here and by the build builder only
        # (CEL has no sum over a list).
        for line in self.pip:
            if not re.match(PIP_LINE_PATTERN, line):
                raise ValueError(MSG_PIP_LINE)
        for package in self.apt:
            if not re.match(APT_PATTERN, package):
                raise ValueError(MSG_APT_PACKAGE)
        if any(var.name.startswith("MLKUBE_") for var in self.env):
            raise ValueError(MSG_RESERVED_ENV)
        if sum(len(f.content.encode()) for f in self.files) > MAX_FILE_BYTES:
            raise ValueError(MSG_FILES_TOTAL)
        return self


class EnvironmentSpec(ApiModel):
    """One version of a software environment: an image, or a build on top of a base image."""

    kube_validations = (
        Rule("has(self.image) != has(self.build)", message=MSG_ONE_SOURCE),
        Rule("!has(self.model) || has(self.build)", message=MSG_MODEL_NEEDS_BUILD),
        Rule(
            "has(self.image) == has(oldSelf.image) && has(self.build) == has(oldSelf.build)",
            message=MSG_SOURCE_IMMUTABLE,
        ),
        Rule("has(self.model) == has(oldSelf.model)", message=MSG_MODEL_IMMUTABLE),
    )

    environment_name: Annotated[
        DnsLabel,
        Rule(f"!self.startsWith('{CURATED_ENVIRONMENT_PREFIX}')", message=MSG_RESERVED),
        immutable(MSG_NAME_IMMUTABLE),
    ]
    """Name shared by all versions of the environment (a DNS label), e.g. lgbm."""
    version: Annotated[LabelValue, immutable(MSG_VERSION_IMMUTABLE)]
    """Version of the environment, e.g. 1 or 2024.06.1 (a label value)."""
    description: Text | None = None
    """Free-text description (the only field that may change)."""
    image: (
        Annotated[
            str, Field(min_length=1, max_length=MAX_IMAGE_LENGTH), immutable(MSG_SOURCE_IMMUTABLE)
        ]
        | None
    ) = None
    """An existing image; a tag is resolved to a digest once and recorded in status."""
    build: Annotated[EnvironmentBuild, immutable(MSG_SOURCE_IMMUTABLE)] | None = None
    """Build the image in the cluster from a base plus pip/conda/apt packages and files."""
    model: (
        Annotated[
            Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_LABEL_PATTERN)],
            immutable(MSG_MODEL_IMMUTABLE),
        ]
        | None
    ) = None
    """A Model in the namespace to package into the image at /opt/mlkube/model (needs build)."""

    @model_validator(mode="after")
    def _check(self) -> EnvironmentSpec:
        if (self.image is None) == (self.build is None):
            raise ValueError(MSG_ONE_SOURCE)
        if self.model is not None and self.build is None:
            raise ValueError(MSG_MODEL_NEEDS_BUILD)
        if self.environment_name.startswith(CURATED_ENVIRONMENT_PREFIX):
            raise ValueError(MSG_RESERVED)
        return self

    @property
    def reference(self) -> str:
        """`name:version`, as deployments name this environment."""
        return f"{self.environment_name}:{self.version}"


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
        list[Annotated[str, Field(max_length=MAX_SHORT_TEXT)]], Field(max_length=2048)
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


ENVIRONMENT = KindDescriptor(
    kind=KIND_ENVIRONMENT,
    plural=PLURAL_ENVIRONMENTS,
    singular="environment",
    short_names=("mlenv",),
    spec_model=EnvironmentSpec,
    status_model=EnvironmentStatus,
    description=(
        "Environment is one version of a software environment: an image pinned by digest, given"
        " or built in the cluster from a base plus pip/conda/apt packages and files. Create a new"
        " object for every new version."
    ),
    printer_columns=(
        PrinterColumn("Environment", ".spec.environmentName", description="Environment name"),
        PrinterColumn("Version", ".spec.version", description="Environment version"),
        PrinterColumn("Phase", ".status.phase", description="Lifecycle phase"),
        PrinterColumn("Digest", ".status.imageDigest", description="Image digest", priority=1),
        PrinterColumn("Image", ".status.image", description="Image pinned by digest", priority=1),
        PrinterColumn("Base", ".spec.build.base", description="Base of the build", priority=1),
        AGE_COLUMN,
    ),
)
