"""The registry of mlkube kinds: what `hack/generate` publishes and what clients can parse.

Adding a kind is one line here after its module defines a `KindDescriptor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from mlkube.api.batch import BATCH_ENDPOINT
from mlkube.api.batch_job import BATCH_JOB
from mlkube.api.crdgen import KindDescriptor
from mlkube.api.endpoint import ONLINE_ENDPOINT
from mlkube.api.environment import ENVIRONMENT
from mlkube.api.errors import InvalidObjectError
from mlkube.api.event_sink import EVENT_SINK
from mlkube.api.model import MODEL
from mlkube.api.pipeline import PIPELINE
from mlkube.api.pipeline_run import PIPELINE_RUN

KINDS: tuple[KindDescriptor, ...] = (
    MODEL,
    ONLINE_ENDPOINT,
    BATCH_ENDPOINT,
    BATCH_JOB,
    PIPELINE,
    PIPELINE_RUN,
    EVENT_SINK,
    ENVIRONMENT,
)


@dataclass(frozen=True)
class ParsedObject:
    """A custom object split into its kind, metadata and validated spec/status models."""

    kind: KindDescriptor
    metadata: Mapping[str, Any]
    spec: BaseModel
    status: BaseModel | None


def find_kind(name: str) -> KindDescriptor:
    """The descriptor for a kind name (`Model`), plural (`models`) or short name (`mlm`)."""
    wanted = name.lower()
    for kind in KINDS:
        if wanted in (kind.kind.lower(), kind.plural, kind.singular, *kind.short_names):
            return kind
    raise InvalidObjectError(f"unknown kind {name!r}")


def parse_object(obj: Mapping[str, Any]) -> ParsedObject:
    """Validate a whole custom object (as from YAML or the API) against its kind's models."""
    kind = find_kind(str(obj.get("kind", "")))
    if obj.get("apiVersion") != kind.api_version:
        raise InvalidObjectError(
            f"{kind.kind}: apiVersion must be {kind.api_version}, got {obj.get('apiVersion')!r}"
        )
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        raise InvalidObjectError(f"{kind.kind}: metadata.name is required")
    try:
        spec = kind.spec_model.model_validate(obj.get("spec"))
        raw_status = obj.get("status")
        status = None if raw_status is None else kind.status_model.model_validate(raw_status)
    except ValidationError as exc:
        raise InvalidObjectError(f"{kind.kind} {metadata['name']}: {exc}") from exc
    return ParsedObject(kind=kind, metadata=metadata, spec=spec, status=status)
