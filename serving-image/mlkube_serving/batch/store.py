"""A folder on any supported store, for the batch scorer's reads and atomic writes.

Filesystems come from `mlkube.storage.locations` (its schemes, its S3 endpoint variables, its
`FetchPolicy` checks), never from fsspec directly, so the batch pods obey the same network rules
as the storage initializer. Writes are atomic per object: a local file is written under a
hidden temporary name and renamed into place; an object store PUT (or a completed multipart
upload) makes the whole object appear at once. Readers therefore never see half a part.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import IO

from fsspec import AbstractFileSystem

from mlkube.storage.locations import (
    Location,
    check_location,
    open_filesystem,
    read_options,
    resolve,
    write_options,
)
from mlkube.storage.policy import UNRESTRICTED, FetchPolicy
from mlkube.storage.transfer import translated_errors


@dataclass(frozen=True)
class Store:
    """A root URI and its filesystem; every path argument is relative to the root."""

    location: Location
    fs: AbstractFileSystem

    @classmethod
    def open(cls, uri: str, policy: FetchPolicy = UNRESTRICTED) -> Store:
        location = resolve(uri)
        check_location(location, policy)
        return cls(location, open_filesystem(location, policy=policy))

    @property
    def uri(self) -> str:
        return self.location.uri

    def path(self, relpath: str = "") -> str:
        root = self.location.path.rstrip("/") or "/"
        return posixpath.join(root, relpath) if relpath else root

    def is_file(self) -> bool:
        with translated_errors("inspect", self.uri):
            return bool(self.fs.isfile(self.path()))

    def open_read(self, relpath: str) -> IO[bytes]:
        with translated_errors("read", f"{self.uri}/{relpath}"):
            handle: IO[bytes] = self.fs.open(
                self.path(relpath), "rb", **read_options(self.location)
            )
            return handle

    def read_bytes(self, relpath: str) -> bytes:
        with translated_errors("read", f"{self.uri}/{relpath}"):
            data: bytes = self.fs.cat_file(self.path(relpath))
            return data

    def digest(self, relpath: str) -> str:
        """sha256 of an object, streamed (a merged output may be far larger than memory)."""
        hasher = hashlib.sha256()
        with self.open_read(relpath) as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()

    def exists(self, relpath: str) -> bool:
        with translated_errors("inspect", f"{self.uri}/{relpath}"):
            return bool(self.fs.exists(self.path(relpath)))

    def size(self, relpath: str) -> int:
        with translated_errors("inspect", f"{self.uri}/{relpath}"):
            return int(self.fs.info(self.path(relpath))["size"])

    def list_files(self, relpath: str = "") -> list[str]:
        """Every file under `relpath`, relative to the root, '/'-separated, sorted by bytes."""
        base = self.path(relpath)
        with translated_errors("list", f"{self.uri}/{relpath}"):
            if not self.fs.exists(base):
                return []
            found = self.fs.find(base, withdirs=False)
        root = self.path().rstrip("/") + "/"
        names = [str(p)[len(root) :] if str(p).startswith(root) else str(p) for p in found]
        return sorted(names, key=str.encode)

    def write_atomic(self, relpath: str, data: bytes) -> None:
        """The object appears whole or not at all (temp + rename locally, one PUT remotely)."""
        target = self.path(relpath)
        with translated_errors("write", f"{self.uri}/{relpath}"):
            if self.location.is_local:
                os.makedirs(posixpath.dirname(target), exist_ok=True)
                temp = _temp_name(target)
                with open(temp, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, target)
            else:
                self.fs.pipe_file(target, data)

    def put_file_atomic(self, relpath: str, local_path: str) -> None:
        """Publish a (possibly large) local file: rename locally, streamed upload remotely."""
        target = self.path(relpath)
        with translated_errors("write", f"{self.uri}/{relpath}"):
            if self.location.is_local:
                os.makedirs(posixpath.dirname(target), exist_ok=True)
                temp = _temp_name(target)
                with open(local_path, "rb") as src, open(temp, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, target)
            else:
                # The object appears when the multipart upload completes: atomic for readers.
                with (
                    open(local_path, "rb") as src,
                    self.fs.open(target, "wb", **write_options(self.location)) as out,
                ):
                    while chunk := src.read(1 << 20):
                        out.write(chunk)

    def remove(self, relpath: str) -> None:
        """Delete one object (gone already: fine)."""
        with translated_errors("delete", f"{self.uri}/{relpath}"):
            if self.fs.exists(self.path(relpath)):
                self.fs.rm_file(self.path(relpath))

    def get_file(self, relpath: str, local_path: str) -> None:
        with translated_errors("download", f"{self.uri}/{relpath}"):
            self.fs.get_file(self.path(relpath), local_path)


def _temp_name(target: str) -> str:
    folder, name = posixpath.split(target)
    return posixpath.join(folder, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
