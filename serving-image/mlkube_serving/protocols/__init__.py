"""HTTP protocol adapters: each turns a `Call` into a `Reply` using only the dataplane.

Adapters are plain synchronous functions so the app can run them inline on the event loop for
small requests and in a thread for large ones, without the adapters knowing which.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlkube_serving.dataplane import DataPlane

JSON = b"application/json"


@dataclass(slots=True)
class Call:
    """One HTTP request as the adapters see it."""

    dataplane: DataPlane
    model: str | None
    version: str | None
    body: bytes
    headers: list[tuple[bytes, bytes]]

    def header(self, name: bytes) -> bytes | None:
        """Value of a header (lower-case name, as ASGI delivers them)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class Reply:
    """Status, body and extra headers of a response."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes = JSON
