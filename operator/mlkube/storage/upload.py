"""Create-only, content-addressed uploads: an uploaded artifact is never replaced underneath
the Models that use it.

`publish` stores an artifact at `<store>/<namespace>/<name>/<version>/<digest prefix>/<basename>`:
two namespaces registering `fraud:1` land in different folders, and two registrations with
different bytes land in different digest folders, so neither can replace the other's bytes
(the Model object's create is what decides which registration wins). `upload` refuses a target
that already holds different bytes; identical bytes are fine (a retried registration).

How "create-only" holds under races: local (file://, pvc://) targets are written into a hidden
sibling and moved into place with a rename that fails when the target exists; object stores
write whole objects atomically, and every upload re-reads the digest of what ended up at the
target, refusing when a concurrent writer left different bytes there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from urllib.parse import quote

from fsspec import AbstractFileSystem

from mlkube.storage.digest import ArtifactFacts, Writable, hash_stream
from mlkube.storage.errors import ArtifactExists, ArtifactNotFound, StorageError, UnsupportedScheme
from mlkube.storage.locations import Location, open_filesystem, resolve, write_options
from mlkube.storage.policy import UNRESTRICTED, Budget
from mlkube.storage.transfer import Entry, compute_digest, list_entries, translated_errors

Progress = Callable[[int, int], None]
# The URIs of Models that use an artifact URI (or anything under it); empty when none do.
References = Callable[[str], list[str]]
DIGEST_PREFIX_LENGTH = 16  # hex characters of the digest in the folder name (64 bits)


def artifact_prefix(store: str, namespace: str, name: str, version: str, digest: str) -> str:
    """The content-addressed folder an artifact is published under."""
    hexdigest = digest.partition(":")[2][:DIGEST_PREFIX_LENGTH]
    return f"{store.rstrip('/')}/{namespace}/{name}/{version}/{hexdigest}"


def publish(
    local_path: str,
    store: str,
    *,
    namespace: str,
    name: str,
    version: str,
    progress: Progress | None = None,
    overwrite: bool = False,
    references: References | None = None,
) -> tuple[str, ArtifactFacts]:
    """Digest `local_path`, upload it create-only under its content-addressed prefix and
    return (artifact URI, facts)."""
    facts = compute_digest(_local_uri(local_path))
    prefix = artifact_prefix(store, namespace, name, version, facts.digest)
    uri = upload(
        local_path, prefix, progress, overwrite=overwrite, references=references, facts=facts
    )
    return uri, facts


def upload(
    local_path: str,
    store_uri: str,
    progress: Progress | None = None,
    *,
    overwrite: bool = False,
    references: References | None = None,
    facts: ArtifactFacts | None = None,
) -> str:
    """Upload a local file or folder as `<store_uri>/<basename of local_path>` and return
    that URI. A target holding the same bytes is kept; different bytes raise ArtifactExists
    unless `overwrite` and `references(uri)` says no Model uses them. `facts` are the local
    artifact's, when the caller already computed them."""
    source = resolve(_local_uri(local_path))
    store = resolve(store_uri)
    if store.is_http:
        raise UnsupportedScheme(f"cannot upload to {store.scheme}://; use s3, gs, pvc or file")
    name = os.path.basename(source.path)
    artifact_uri = store_uri.rstrip("/") + "/" + (quote(name) if store.is_local else name)
    target = resolve(artifact_uri)
    with translated_errors("upload to", store_uri):
        local_fs = open_filesystem(source)
        try:
            entries = list_entries(source, local_fs, Budget(UNRESTRICTED.limits, local_path))
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"nothing to upload at {local_path}") from exc
        if not entries:
            raise StorageError(f"nothing to upload: {local_path} is an empty folder")
        if store.is_local and target.path == source.path:
            return artifact_uri  # the store already is where the artifact lives
        wanted = facts or compute_digest(source.uri)
        store_fs = open_filesystem(store)
        if store_fs.exists(target.path):
            if _digest_or_none(artifact_uri) == wanted.digest:
                return artifact_uri  # same bytes: a retried or concurrent identical upload
            _check_overwrite(artifact_uri, overwrite, references)
            store_fs.rm(target.path, recursive=True)
        single = len(entries) == 1 and entries[0].path == source.path
        if store.is_local:
            # The rename into place is create-only itself: nothing to re-read.
            _write_local(entries, local_fs, target, single, progress)
            return artifact_uri
        _write_objects(entries, local_fs, store_fs, store, target.path, single, progress)
    # Object stores have no create-only rename: re-read what ended up there (costs one read).
    if _digest_or_none(artifact_uri) != wanted.digest:
        raise ArtifactExists(
            f"{artifact_uri} holds different bytes after the upload: a concurrent registration "
            "wrote there; nothing was registered (run the command again to see what is there)"
        )
    return artifact_uri


def _local_uri(path: str) -> str:
    return "file://" + quote(os.path.abspath(path))


def _digest_or_none(uri: str) -> str | None:
    try:
        return compute_digest(uri).digest
    except ArtifactNotFound:
        return None


def _check_overwrite(uri: str, overwrite: bool, references: References | None) -> None:
    if not overwrite:
        raise ArtifactExists(
            f"{uri} already exists with different bytes; artifacts are create-only (register "
            "a new version, or pass --overwrite if no Model uses it)"
        )
    if references is None:
        raise ArtifactExists(f"cannot overwrite {uri}: nobody checked which Models use it")
    users = references(uri)
    if users:
        shown = ", ".join(sorted(users)[:5]) + (" ..." if len(users) > 5 else "")
        raise ArtifactExists(f"refusing to overwrite {uri}: used by Model {shown}")


def _write_local(
    entries: list[Entry],
    local_fs: AbstractFileSystem,
    target: Location,
    single: bool,
    progress: Progress | None,
) -> None:
    """Write into a hidden sibling, then move it into place only if nothing is there."""
    parent = os.path.dirname(target.path)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(target.path)}.{uuid.uuid4().hex}.part")
    reporter = _Reporter(sum(int(local_fs.size(e.path)) for e in entries), progress)
    try:
        for entry in entries:
            path = staging if single else os.path.join(staging, *entry.relpath.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with local_fs.open(entry.path, "rb") as stream, open(path, "wb") as sink:
                hash_stream(stream, reporter.wrap(sink))
        if single:
            os.link(staging, target.path)  # fails with FileExistsError if a racer got there
        else:
            os.rename(staging, target.path)  # fails if a racer created a non-empty folder
    except OSError as exc:
        if os.path.exists(target.path):
            raise ArtifactExists(
                f"{target.uri} was created by a concurrent registration while uploading"
            ) from exc
        raise
    finally:
        if os.path.isdir(staging):
            local_fs.rm(staging, recursive=True)
        elif os.path.exists(staging):
            os.remove(staging)


def _write_objects(
    entries: list[Entry],
    local_fs: AbstractFileSystem,
    store_fs: AbstractFileSystem,
    store: Location,
    target_root: str,
    single: bool,
    progress: Progress | None,
) -> None:
    """Object stores: every object appears whole when its write completes."""
    reporter = _Reporter(sum(int(local_fs.size(e.path)) for e in entries), progress)
    for entry in entries:
        target = target_root if single else f"{target_root}/{entry.relpath}"
        with (
            local_fs.open(entry.path, "rb") as stream,
            store_fs.open(target, "wb", **write_options(store)) as sink,
        ):
            hash_stream(stream, reporter.wrap(sink))


class _Reporter:
    """Counts bytes written across files and reports `progress(done, total)`."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.done = 0
        self._total = total
        self._progress = progress
        if progress is not None:
            progress(0, total)

    def wrap(self, sink: Writable) -> Writable:
        reporter = self

        class _Sink:
            def write(self, data: bytes) -> int:
                sink.write(data)
                reporter.done += len(data)
                if reporter._progress is not None:
                    reporter._progress(reporter.done, reporter._total)
                return len(data)

        return _Sink()
