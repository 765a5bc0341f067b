"""Upload one artifact output and digest exactly the bytes uploaded, in one read.

Not `mlkube.storage.upload`: that reads the source through fsspec (which follows links; see
step/files.py) and, on object stores, reads the whole upload back to check create-only. A step
attempt owns its prefix (`<store>/<ns>/pipelineruns/<run>/<step>/aN`, one pod per attempt), so
nothing else writes there; the digest is the registry's (ArtifactHasher over the files in
digest order), computed while streaming, and the operator re-verifies it before a cache hit.
"""

from __future__ import annotations

import os
import posixpath

from fsspec import AbstractFileSystem

from mlkube.storage.digest import ArtifactFacts, ArtifactHasher, hash_stream
from mlkube.storage.locations import Location, open_filesystem, resolve, write_options
from mlkube.storage.transfer import translated_errors
from mlkube_serving.step.errors import StepError
from mlkube_serving.step.files import is_dir, list_tree, open_dir, open_in_tree, open_regular

Listing = list[tuple[str, int]]


def open_store(uri: str) -> AbstractFileSystem:
    """The filesystem for `uri`'s scheme. `outputs` opens it while `main` still runs, so the
    import of the cloud SDK (about a second for s3fs) is not on the step's critical path."""
    location = _writable(uri)
    with translated_errors("open", uri):
        return open_filesystem(location)


def upload_output(
    local: str, target_uri: str, what: str, fs: AbstractFileSystem | None = None
) -> tuple[ArtifactFacts, Listing]:
    """Upload the folder (or single file) `local` to `target_uri` (through `fs` when given, a
    filesystem of the same scheme); return its facts and listing (relative path, size) as
    hashed."""
    location = _writable(target_uri)
    fs = fs or open_store(target_uri)
    if not is_dir(local):
        fd = open_regular(local, what)
        name = os.path.basename(local)
        content, size = _copy(fd, fs, location, location.path)
        hasher = ArtifactHasher()
        hasher.add(name, content, size)
        return hasher.facts(), [(name, size)]
    root = open_dir(local, what)
    try:
        return _upload_tree(root, fs, location, what)
    finally:
        os.close(root)


def _upload_tree(
    root: int, fs: AbstractFileSystem, location: Location, what: str
) -> tuple[ArtifactFacts, Listing]:
    files = list_tree(root, what)
    if not files:
        raise StepError(f"{what} is an empty folder; write at least one file")
    hasher, listing = ArtifactHasher(), []
    for relpath, _ in files:
        fd = open_in_tree(root, relpath, what)
        content, size = _copy(fd, fs, location, f"{location.path.rstrip('/')}/{relpath}")
        hasher.add(relpath, content, size)
        listing.append((relpath, size))
    return hasher.facts(), listing


def _copy(fd: int, fs: AbstractFileSystem, location: Location, target: str) -> tuple[bytes, int]:
    """Stream one local file (an fd opened without following links) to `target`."""
    with os.fdopen(fd, "rb") as stream, translated_errors("upload to", location.uri):
        if location.is_local:
            fs.makedirs(posixpath.dirname(target), exist_ok=True)
        with fs.open(target, "wb", **write_options(location)) as sink:
            return hash_stream(stream, sink)


def write_text(uri: str, text: str, fs: AbstractFileSystem | None = None) -> None:
    """Write a small object (the stored summary) at `uri`."""
    location = _writable(uri)
    fs = fs or open_store(uri)
    with translated_errors("write", uri):
        if location.is_local:
            fs.makedirs(posixpath.dirname(location.path), exist_ok=True)
        with fs.open(location.path, "wb", **write_options(location)) as sink:
            sink.write(text.encode("utf-8"))


def _writable(uri: str) -> Location:
    location = resolve(uri)
    if location.is_http:
        raise StepError(f"cannot upload to {location.scheme}://; use s3, gs, pvc or file")
    return location
