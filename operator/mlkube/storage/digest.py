"""The artifact digest: one sha256 over every file of a file or folder artifact.

Pure (hashlib only) so the registry (CLI), the operator and the storage initializer share one
definition; `docs/artifact-digest.md` documents the algorithm with a worked example.

Algorithm (v1):
  1. Each file gets a relative POSIX path: its path under the artifact folder, or its basename
     for a single-file artifact. Folders themselves are not hashed (object stores have none).
  2. Files are taken in ascending order of the UTF-8 bytes of that path.
  3. Each file contributes one record: UTF-8(path) || 0x00 || sha256(content) (32 raw bytes).
  4. digest = "sha256:" + hex(sha256(record_1 || record_2 || ...)).

The records cannot be read two ways: a path never contains NUL and the content hash has a fixed
length, so two different artifacts can only collide by colliding sha256. Hashing each content
separately (instead of length-prefixing it) lets us stream sources whose size is unknown up front
(chunked HTTP) and hash while writing a download.
"""

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from mlkube.contract import DIGEST_ALGORITHM
from mlkube.storage.errors import InvalidArtifact, StorageError

CHUNK_SIZE: Final = 1024 * 1024
_DIGEST_RE: Final = re.compile(rf"^{DIGEST_ALGORITHM}:[0-9a-f]{{64}}$")


@dataclass(frozen=True)
class ArtifactFacts:
    """What the registry records and the initializer verifies about one artifact."""

    digest: str  # "sha256:<hex>"
    size: int  # total bytes of file contents
    file_count: int


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class ArtifactHasher:
    """Accumulates file records; callers must add files in `sort_key` order."""

    def __init__(self) -> None:
        self._outer = hashlib.sha256()
        self._size = 0
        self._count = 0
        self._last: bytes | None = None

    def add(self, relpath: str, content_sha256: bytes, size: int) -> None:
        key = sort_key(relpath)
        if self._last is not None and key <= self._last:
            raise StorageError(f"files must be hashed in sorted unique order, got {relpath!r}")
        if len(content_sha256) != hashlib.sha256().digest_size:
            raise StorageError("content hash must be 32 raw sha256 bytes")
        self._last = key
        self._outer.update(key + b"\x00" + content_sha256)
        self._size += size
        self._count += 1

    def facts(self) -> ArtifactFacts:
        return ArtifactFacts(
            digest=f"{DIGEST_ALGORITHM}:{self._outer.hexdigest()}",
            size=self._size,
            file_count=self._count,
        )


def sort_key(relpath: str) -> bytes:
    """The order and the bytes a path is hashed with; rejects paths that are not clean."""
    parts = relpath.split("/")
    if not relpath or "\x00" in relpath or any(p in ("", ".", "..") for p in parts):
        raise InvalidArtifact(f"not a clean relative POSIX path: {relpath!r}")
    return relpath.encode("utf-8")


def hash_stream(
    stream: Readable, sink: Writable | None = None, on_chunk: Callable[[int], None] | None = None
) -> tuple[bytes, int]:
    """sha256 and length of a stream read in chunks, copying each chunk to `sink` if given;
    `on_chunk(length)` sees every chunk before it is used (and may raise to stop reading)."""
    content = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        if on_chunk is not None:
            on_chunk(len(chunk))
        content.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return content.digest(), size


def digest_of_contents(files: Iterable[tuple[str, bytes]]) -> ArtifactFacts:
    """Facts of an in-memory artifact {relpath: content}; the reference for tests and docs."""
    hasher = ArtifactHasher()
    for relpath, content in sorted(files, key=lambda item: sort_key(item[0])):
        hasher.add(relpath, hashlib.sha256(content).digest(), len(content))
    return hasher.facts()


def check_digest(digest: str) -> str:
    """Return `digest` if it has the form "sha256:<64 lowercase hex>", else raise."""
    if not _DIGEST_RE.match(digest):
        raise InvalidArtifact(
            f"malformed digest {digest!r}: expected '{DIGEST_ALGORITHM}:<64 hex>'"
        )
    return digest
