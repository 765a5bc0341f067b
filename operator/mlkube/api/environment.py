"""The `Environment` kind: one version of a software environment, an image pinned by digest.

Either an existing `image` (a tag is resolved to a digest) or a `build` that appends pip/apt
packages, files and ENV to a base image (docs/environments.md §1-§2). A new version is a new
object, as for Model, so the whole spec but `description` is immutable; CEL enforces that, the
one-of and the reserved curated names for every client, the validators here mirror it for the
CLI. Endpoints, batch endpoints and pipeline steps name an Environment with `EnvironmentRef`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from mlkube.api.common import (
    DNS_LABEL_PATTERN,
    LABEL_VALUE_PATTERN,
    ApiModel,
    DnsLabel,
    EnvVar,
    LabelValue,
    Text,
)
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn
from mlkube.api.environment_status import MAX_IMAGE_LENGTH, EnvironmentStatus
from mlkube.api.markers import ListMap, ListSet, Rule, immutable
from mlkube.contract import (
    CURATED_ENVIRONMENT_PREFIX,
    KIND_ENVIRONMENT,
    PLURAL_ENVIRONMENTS,
)

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
