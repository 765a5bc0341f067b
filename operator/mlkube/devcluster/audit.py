"""Read the dev cluster's audit log (`ScaleOptions.audit_users`): who asked the API server for
what, counted by verb and resource. The benchmark and the idle tests count the operator's
requests here rather than in its own client, so Kopf's requests count too."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Request:
    user: str
    verb: str  # get, list, watch, create, update, patch, delete, ...
    resource: str  # "deployments", "onlineendpoints/status", ...
    namespace: str
    name: str
    code: int
    at: str  # stageTimestamp, RFC 3339 with microseconds

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS


def parse_line(line: str) -> Request | None:
    """One audit event (JSON) as a Request; None for a line that is not one."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    ref = event.get("objectRef") or {}
    if not isinstance(event, dict) or "verb" not in event:
        return None
    resource = str(ref.get("resource") or event.get("requestURI", "?"))
    if ref.get("subresource"):
        resource += f"/{ref['subresource']}"
    return Request(
        user=str((event.get("user") or {}).get("username", "")),
        verb=str(event["verb"]),
        resource=resource,
        namespace=str(ref.get("namespace") or ""),
        name=str(ref.get("name") or ""),
        code=int((event.get("responseStatus") or {}).get("code") or 0),
        at=str(event.get("stageTimestamp") or ""),
    )


class AuditLog:
    """The audit log file, read from a remembered offset: `mark()` then `since_mark()` gives
    exactly the requests made in between."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def mark(self) -> None:
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self, user: str | None = None) -> list[Request]:
        return [r for r in self._read(self._offset) if user is None or r.user == user]

    def _read(self, offset: int) -> Iterator[Request]:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(offset)
            data = f.read()
        # A line still being written has no newline yet: it belongs to the next read.
        for raw in data[: data.rfind(b"\n") + 1].splitlines():
            request = parse_line(raw.decode("utf-8", "replace"))
            if request is not None:
                yield request


def by_verb_and_resource(requests: Iterable[Request]) -> Counter[tuple[str, str]]:
    return Counter((r.verb, r.resource) for r in requests)


def writes(requests: Iterable[Request]) -> list[Request]:
    return [r for r in requests if r.is_write]
