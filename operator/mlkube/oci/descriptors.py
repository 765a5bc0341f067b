"""Content descriptors: what a manifest points at, a fetched manifest, a platform's image."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mlkube.oci.reference import Reference, check_digest


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    raw: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.raw)
        return doc


@dataclass(frozen=True)
class Image:
    """One platform's image manifest, and the index it was picked from (if any)."""

    reference: Reference  # pinned to `manifest.digest`
    manifest: Manifest
    index_digest: str | None

    @property
    def config(self) -> Descriptor:
        return _descriptor(self.manifest.json()["config"])

    @property
    def layers(self) -> list[Descriptor]:
        return [_descriptor(d) for d in self.manifest.json()["layers"]]


def _descriptor(doc: dict[str, Any]) -> Descriptor:
    return Descriptor(str(doc["mediaType"]), check_digest(str(doc["digest"])), int(doc["size"]))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
