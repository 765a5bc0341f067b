"""Digest, download and upload of file or folder artifacts on any supported scheme.

Every function streams in chunks (never a whole file in memory) and hashes with
`mlkube.storage.digest`, so the registry and the storage initializer compute the same digest.
"""

import contextlib
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from fsspec import AbstractFileSystem

from mlkube.storage.digest import (
    ArtifactFacts,
    ArtifactHasher,
    Writable,
    check_digest,
    hash_stream,
    sort_key,
)
from mlkube.storage.errors import (
    ArtifactNotFound,
    DigestMismatch,
    StorageError,
    UnsupportedScheme,
)
from mlkube.storage.locations import Location, open_filesystem, read_options, resolve, write_options

Progress = Callable[[int, int], None]
_PART_SUFFIX = ".mlkube-part"


@dataclass(frozen=True)
class _Entry:
    relpath: str  # relative POSIX path inside the artifact (basename for a single file)
    path: str  # path the filesystem opens


@contextlib.contextmanager
def _translated_errors(action: str, uri: str) -> Iterator[None]:
    """Turn transport errors (OSError, botocore, aiohttp, ...) into the storage hierarchy."""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError as exc:
        raise ArtifactNotFound(f"artifact not found: {uri}") from exc
    except Exception as exc:  # transports raise many unrelated types; keep the cause chained
        raise StorageError(f"cannot {action} {uri}: {type(exc).__name__}: {exc}") from exc


def _list_entries(location: Location, fs: AbstractFileSystem) -> list[_Entry]:
    """The artifact's files in digest order; a URL or a file is a one-file artifact."""
    if location.is_http:
        name = unquote(posixpath.basename(urlsplit(location.path).path))
        if not name:
            raise StorageError(f"URL does not name a file: {location.uri}")
        return [_Entry(name, location.path)]
    info = fs.info(location.path)
    if info["type"] != "directory":
        return [_Entry(posixpath.basename(location.path.rstrip("/")), location.path)]
    root = location.path.rstrip("/")
    entries = []
    for found in fs.find(root, withdirs=False, detail=False):
        name = str(found)
        if not name.startswith(root + "/"):
            raise StorageError(f"listing of {location.uri} returned foreign path {name!r}")
        relpath = name[len(root) + 1 :]
        sort_key(relpath)  # rejects "..", empty segments and NUL before anything is written
        entries.append(_Entry(relpath, name))
    return sorted(entries, key=lambda entry: sort_key(entry.relpath))


def compute_digest(uri: str) -> ArtifactFacts:
    """sha256 digest, total size and file count of the file or folder artifact at `uri`."""
    location = resolve(uri)
    with _translated_errors("read", uri):
        fs = open_filesystem(location)
        hasher = ArtifactHasher()
        for entry in _list_entries(location, fs):
            with fs.open(entry.path, "rb", **read_options(location)) as stream:
                content_hash, size = hash_stream(stream)
            hasher.add(entry.relpath, content_hash, size)
        return hasher.facts()


def download(uri: str, dest: str) -> ArtifactFacts:
    """Copy the artifact into `dest` (a single file lands as dest/<basename>) and return the
    facts of the bytes written."""
    facts, _ = _download(uri, dest)
    return facts


def download_and_verify(uri: str, dest: str, expected_digest: str | None) -> ArtifactFacts:
    """`download`, then compare with `expected_digest`; on a mismatch the written files are
    removed (an unverified model must not be served) and `DigestMismatch` is raised."""
    if expected_digest is not None:
        check_digest(expected_digest)
    facts, written = _download(uri, dest)
    if expected_digest is not None and facts.digest != expected_digest:
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        raise DigestMismatch(uri, expected_digest, facts.digest)
    return facts


def _download(uri: str, dest: str) -> tuple[ArtifactFacts, list[str]]:
    location = resolve(uri)
    written: list[str] = []
    with _translated_errors("download", uri):
        fs = open_filesystem(location)
        hasher = ArtifactHasher()
        for entry in _list_entries(location, fs):
            target = os.path.join(dest, *entry.relpath.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            partial = target + _PART_SUFFIX
            with (
                fs.open(entry.path, "rb", **read_options(location)) as stream,
                open(partial, "wb") as sink,
            ):
                content_hash, size = hash_stream(stream, sink)
            # Rename only complete files, so a crashed copy never looks like a model file.
            os.replace(partial, target)
            written.append(target)
            hasher.add(entry.relpath, content_hash, size)
        return hasher.facts(), written


def upload(local_path: str, store_uri: str, progress: Progress | None = None) -> str:
    """Upload a local file or folder under the store prefix `store_uri`; return the artifact
    URI (`<store_uri>/<basename of local_path>`), replacing what was there.
    `progress(done, total)` gets byte counts."""
    source = resolve("file://" + quote(os.path.abspath(local_path)))
    store = resolve(store_uri)
    if store.is_http:
        raise UnsupportedScheme(f"cannot upload to {store.scheme}://; use s3, gs, pvc or file")
    name = os.path.basename(source.path)
    artifact_uri = store_uri.rstrip("/") + "/" + (quote(name) if store.is_local else name)
    target_root = resolve(artifact_uri).path
    with _translated_errors("upload to", store_uri):
        local_fs = open_filesystem(source)
        try:
            entries = _list_entries(source, local_fs)
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"nothing to upload at {local_path}") from exc
        if not entries:
            raise StorageError(f"nothing to upload: {local_path} is an empty folder")
        if store.is_local and target_root == source.path:
            return artifact_uri  # the store already is where the artifact lives
        _copy_entries(entries, source, store, target_root, progress)
    return artifact_uri


class _ProgressSink:
    """Forwards writes to `sink` and reports the running byte count to `progress`."""

    def __init__(self, sink: Writable, done: int, total: int, progress: Progress | None) -> None:
        self._sink = sink
        self.done = done
        self._total = total
        self._progress = progress

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.done += len(data)
        if self._progress is not None:
            self._progress(self.done, self._total)
        return len(data)


def _copy_entries(
    entries: list[_Entry],
    source: Location,
    store: Location,
    target_root: str,
    progress: Progress | None,
) -> None:
    local_fs = open_filesystem(source)
    store_fs = open_filesystem(store)
    single = len(entries) == 1 and entries[0].path == source.path
    total = sum(int(local_fs.size(entry.path)) for entry in entries)
    if progress is not None:
        progress(0, total)
    if not single and store_fs.exists(target_root):
        # Replace, not merge: stale files from an earlier upload would change the digest.
        store_fs.rm(target_root, recursive=True)
    done = 0
    for entry in entries:
        target = target_root if single else f"{target_root}/{entry.relpath}"
        with (
            local_fs.open(entry.path, "rb") as stream,
            store_fs.open(target, "wb", **write_options(store)) as sink,
        ):
            counting = _ProgressSink(sink, done, total, progress)
            hash_stream(stream, counting)
            done = counting.done
