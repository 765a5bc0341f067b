"""What the Environment controller reads, decided without I/O (docs/environments.md §1-§3).

The build pod reports through two channels the operator can read without the pod holding
API credentials: the push container's termination message (a small JSON: digest, image,
sizes, python, serving contract) and one JSON line on its stdout with the package list
(too long for the 4 KiB termination message). Also here: the two claims on one
`name:version` (Duplicate) and who uses an environment (usedBy).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mlkube.api.environment import version_key
from mlkube.reconcile.environment_admission import references as spec_references

LOG_TAIL_LINES: Final = 20
LOG_TAIL_CHARS: Final = 2000


@dataclass(frozen=True)
class BuildReport:
    """The push container's termination message."""

    digest: str
    image: str
    size_bytes: int | None = None
    python: str | None = None
    serving: dict[str, Any] = field(default_factory=dict)
    packaged_model: dict[str, Any] | None = None


def parse_report(message: str | None) -> BuildReport | None:
    """The termination message as a report, or None when it is not one (a crash's log tail)."""
    try:
        doc = json.loads(message or "")
    except ValueError:
        return None
    if not isinstance(doc, dict) or not str(doc.get("digest", "")).startswith("sha256:"):
        return None
    size = doc.get("sizeBytes", doc.get("size"))
    serving = doc.get("serving")
    packaged = doc.get("packagedModel")
    return BuildReport(
        digest=str(doc["digest"]),
        image=str(doc.get("image") or ""),
        size_bytes=size if isinstance(size, int) else None,
        python=str(doc["python"]) if doc.get("python") else None,
        serving=dict(serving) if isinstance(serving, dict) else {},
        packaged_model=dict(packaged) if isinstance(packaged, dict) else None,
    )


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The end of a log, for a BuildFailed message (bounded again by the condition)."""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    return tail[-LOG_TAIL_CHARS:]


def claim(obj: Mapping[str, Any]) -> tuple[str, str]:
    spec = obj.get("spec") or {}
    return str(spec.get("environmentName", "")), str(spec.get("version", ""))


def duplicate_of(obj: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> str | None:
    """The older Environment claiming the same name:version (the younger one yields), or None.
    Age: creationTimestamp, then name (objects created in the same second)."""
    mine = claim(obj)
    meta = obj["metadata"]
    key = (str(meta.get("creationTimestamp", "")), str(meta["name"]))
    older = [
        o["metadata"]["name"]
        for o in others
        if o["metadata"]["name"] != meta["name"]
        and claim(o) == mine
        and not o["metadata"].get("deletionTimestamp")
        and (str(o["metadata"].get("creationTimestamp", "")), o["metadata"]["name"]) < key
    ]
    return min(older) if older else None


def references(ref: str | None, name: str, version: str, latest: bool) -> bool:
    """Whether a reference (`name:version`, `name@latest`) designates this environment."""
    if not ref:
        return False
    return ref == f"{name}:{version}" or (latest and ref == f"{name}@latest")


def used_by(
    name: str,
    version: str,
    *,
    latest: bool,
    endpoints: Iterable[Mapping[str, Any]] = (),
    batch_endpoints: Iterable[Mapping[str, Any]] = (),
    pipelines: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, str]]:
    """Who references name:version now, from the live objects (not from their status), in a
    stable order: endpoints' and batch endpoints' deployments, pipelines' steps."""
    users = [
        {"kind": kind, "name": r.name, r.field: r.item}
        for kind, objs in (
            ("OnlineEndpoint", endpoints), ("BatchEndpoint", batch_endpoints),
            ("Pipeline", pipelines),
        )
        for obj in objs
        for r in spec_references(kind, obj)
        if references(r.ref, name, version, latest)
    ]  # fmt: skip
    return sorted(
        users, key=lambda u: (u["kind"], u["name"], u.get("deployment", u.get("step", "")))
    )


def is_latest(version: str, versions: Iterable[str]) -> bool:
    """Whether `version` is the highest of `versions` (numeric parts compare as numbers)."""
    return max([*versions, version], key=version_key) == version
