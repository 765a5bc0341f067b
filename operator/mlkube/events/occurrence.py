"""One occurrence of a catalogue event: the CloudEvent's attributes and data, with a stable id.

The id is sha256 over (object uid, type, the occurrence's discriminator): the same occurrence
implied again (another watch event, an operator restart) has the same id, so the outbox and the
consumers deduplicate; two occurrences never share one. The CloudEvent's JSON form (structured
mode) is also how an occurrence is stored and read back (`to_cloudevent`/`from_cloudevent`).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from mlkube.events.catalogue import EventType
from mlkube.events.data import EventData

SPECVERSION: Final = "1.0"
CONTENT_TYPE_JSON: Final = "application/json"
GROUP_PATH: Final = "/apis/mlkube.dev"
# The CloudEvents extension attributes mlkube sets (lowercase alphanumerics, <= 20 chars).
EXT_NAMESPACE: Final = "mlkubenamespace"
EXT_NAME: Final = "mlkubename"
EXT_UID: Final = "mlkubeuid"
EXT_GENERATION: Final = "mlkubegeneration"
EXT_MODEL_VERSION: Final = "mlkubemodelversion"
EXT_MODEL_DIGEST: Final = "mlkubemodeldigest"
EXTENSIONS: Final = (
    EXT_NAMESPACE, EXT_NAME, EXT_UID, EXT_GENERATION, EXT_MODEL_VERSION, EXT_MODEL_DIGEST
)  # fmt: skip
# Context attributes other than extensions (CloudEvents 1.0 core, required and optional).
CORE_ATTRIBUTES: Final = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}
)

Extension = str | int


@dataclass(frozen=True)
class Occurrence:
    """A CloudEvent ready to encode; `data` is the JSON form of the type's data model."""

    type: str
    id: str
    source: str
    subject: str
    time: str | None
    data: Mapping[str, Any]
    dataschema: str | None = None
    extensions: Mapping[str, Extension] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        """Context attributes (core and extensions), without data; unset ones left out."""
        attrs: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "datacontenttype": CONTENT_TYPE_JSON,
        }
        if self.time is not None:
            attrs["time"] = self.time
        if self.dataschema is not None:
            attrs["dataschema"] = self.dataschema
        attrs.update(self.extensions)
        return attrs

    def to_cloudevent(self) -> dict[str, Any]:
        """The structured-mode JSON object (attributes + data)."""
        return {**self.attributes(), "data": dict(self.data)}

    @classmethod
    def from_cloudevent(cls, doc: Mapping[str, Any]) -> Occurrence:
        """Read back what `to_cloudevent` wrote (e.g. from the outbox)."""
        extensions = {k: v for k, v in doc.items() if k not in CORE_ATTRIBUTES and k != "data"}
        return cls(
            type=str(doc["type"]),
            id=str(doc["id"]),
            source=str(doc["source"]),
            subject=str(doc["subject"]),
            time=doc.get("time"),
            data=dict(doc.get("data") or {}),
            dataschema=doc.get("dataschema"),
            extensions=extensions,
        )


def to_payload(occurrence: Occurrence) -> bytes:
    """How an occurrence is stored (the outbox's payload): its structured-mode JSON."""
    return orjson.dumps(occurrence.to_cloudevent(), option=orjson.OPT_SORT_KEYS)


def from_payload(payload: bytes) -> Occurrence:
    """The occurrence `to_payload` stored."""
    doc = orjson.loads(payload)
    if not isinstance(doc, dict):
        raise ValueError("an event payload is a JSON object")
    return Occurrence.from_cloudevent(doc)


def epoch_seconds(time: str | None) -> float | None:
    """The occurrence's time as unix seconds (None: unknown or not RFC 3339)."""
    if not time:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(time.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def occurrence_id(uid: str, event_type: str, discriminator: Sequence[object] = ()) -> str:
    """Stable id: hex sha256 over uid, type and the discriminator parts (NUL-separated)."""
    parts = [uid, event_type, *(_part(p) for p in discriminator)]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _part(value: object) -> str:
    if isinstance(value, Mapping):  # splits: order-independent
        return ",".join(f"{k}={value[k]}" for k in sorted(value))
    return "" if value is None else str(value)


def source_of(plural: str, namespace: str, name: str) -> str:
    return f"{GROUP_PATH}/namespaces/{namespace}/{plural}/{name}"


def subject_of(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


@dataclass(frozen=True)
class ObjectFacts:
    """What every occurrence of one object shares (from its metadata)."""

    kind: str
    plural: str
    namespace: str
    name: str
    uid: str
    generation: int | None

    @classmethod
    def of(cls, kind: str, plural: str, obj: Mapping[str, Any]) -> ObjectFacts:
        meta = obj.get("metadata") or {}
        generation = meta.get("generation")
        return cls(
            kind=kind,
            plural=plural,
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(generation) if isinstance(generation, int) else None,
        )

    def occurrence(
        self,
        event: EventType,
        discriminator: Sequence[object],
        time: str | None,
        data: EventData,
        *,
        model_version: str | None = None,
        model_digest: str | None = None,
    ) -> Occurrence:
        """The occurrence of `event` for this object; data validated by the type's model."""
        if not isinstance(data, event.data):
            raise TypeError(f"{event.type} carries {event.data.__name__}, not {type(data)}")
        extensions: dict[str, Extension] = {
            EXT_NAMESPACE: self.namespace,
            EXT_NAME: self.name,
            EXT_UID: self.uid,
        }
        if self.generation is not None:
            extensions[EXT_GENERATION] = self.generation
        if model_version:
            extensions[EXT_MODEL_VERSION] = model_version
        if model_digest:
            extensions[EXT_MODEL_DIGEST] = model_digest
        return Occurrence(
            type=event.type,
            id=occurrence_id(self.uid, event.type, discriminator),
            source=source_of(self.plural, self.namespace, self.name),
            subject=subject_of(self.kind, self.namespace, self.name),
            time=time,
            data=data.to_json_data(),
            dataschema=event.dataschema,
            extensions=extensions,
        )
