"""Digest and download of file or folder artifacts on any supported scheme.

Every function streams in chunks (never a whole file in memory) and hashes with
`mlkube.storage.digest`, so the registry and the storage initializer compute the same digest.
A `FetchPolicy` bounds what one call may read (bytes, files, wall clock, where from); every
download target is checked to lie inside the destination before the first byte is written.
"""

import contextlib
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem

from mlkube.storage.digest import ArtifactFacts, ArtifactHasher, check_digest, hash_stream, sort_key
from mlkube.storage.errors import (
    ArtifactNotFound,
    ArtifactTimeout,
    DigestMismatch,
    DigestRequired,
    InvalidArtifact,
    StorageError,
    storage_error_in,
)
from mlkube.storage.locations import Location, check_location, open_filesystem, read_options
from mlkube.storage.locations import resolve as resolve_uri
from mlkube.storage.policy import UNRESTRICTED, Budget, FetchPolicy

_PART_SUFFIX = ".mlkube-part"


@dataclass(frozen=True)
class Entry:
    relpath: str  # relative POSIX path inside the artifact (basename for a single file)
    path: str  # path the filesystem opens
    size: int | None = None  # as listed, when the store says


# HTTP statuses that say "try later", not "absent".
_TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def _transient_not_found(exc: FileNotFoundError) -> bool:
    """fsspec's http filesystem reports any failed HEAD/GET, a refused connection or a 503
    included, as FileNotFoundError: only an HTTP answer other than "try later" means absent."""
    cause = exc.__cause__ or exc.__context__
    if cause is None or isinstance(cause, FileNotFoundError):
        return False
    status = getattr(cause, "status", None)
    if isinstance(status, int):
        return status in _TRANSIENT_HTTP_STATUSES
    # No HTTP answer at all (refused, reset, DNS, timeout); other transports' "absent" errors
    # (botocore's NoSuchKey, ...) stay not-found.
    return isinstance(cause, OSError | TimeoutError) or type(cause).__module__.startswith("aiohttp")


@contextlib.contextmanager
def translated_errors(action: str, uri: str, budget: Budget | None = None) -> Iterator[None]:
    """Turn transport errors (OSError, botocore, aiohttp, ...) into the storage hierarchy."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # transports raise many unrelated types; keep the cause chained
        inner = storage_error_in(exc)
        if inner is not None:
            raise inner from exc
        if isinstance(exc, FileNotFoundError) and not _transient_not_found(exc):
            raise ArtifactNotFound(f"artifact not found: {uri}") from exc
        if isinstance(exc, TimeoutError) and budget is not None:
            budget.check_time()  # raises ArtifactTimeout when the wall clock cap is what hit
        if isinstance(exc, TimeoutError):
            raise ArtifactTimeout(f"reading {uri} timed out: {exc}") from exc
        raise StorageError(f"cannot {action} {uri}: {type(exc).__name__}: {exc}") from exc


def list_entries(location: Location, fs: AbstractFileSystem, budget: Budget) -> list[Entry]:
    """The artifact's files in digest order; a URL or a file is a one-file artifact.
    Names are validated and counts and listed sizes checked before anything is read."""
    if location.is_http:
        name = unquote(posixpath.basename(urlsplit(location.path).path))
        if not name or "/" in name:
            raise InvalidArtifact(f"URL does not name a file: {location.uri}")
        sort_key(name)  # "..", "." and NUL (e.g. from ..%2F) are refused here
        size = fs.info(location.path).get("size")
        entries = [Entry(name, location.path, size)]
    else:
        info = fs.info(location.path)
        if info["type"] != "directory":
            name = posixpath.basename(location.path.rstrip("/"))
            entries = [Entry(name, location.path, info.get("size"))]
        else:
            entries = _walk(location, fs, budget)
    budget.check_count(len(entries))
    budget.check_size(sum(entry.size or 0 for entry in entries))
    return sorted(entries, key=lambda entry: sort_key(entry.relpath))


def _count_objects_up_to(fs: AbstractFileSystem, root: str, cap: int) -> int:
    """Keys under an s3 prefix, counted page by page and no further than cap + 1: a listing
    of millions of keys is refused after cap/1000 requests, not held in memory first."""
    bucket, _, key = root.partition("/")
    count, token = 0, None
    while count <= cap:
        extra: dict[str, str] = {"ContinuationToken": token} if token else {}
        page = fs.call_s3(
            "list_objects_v2", Bucket=bucket, Prefix=key + "/" if key else "",
            MaxKeys=min(1000, cap + 1 - count), **extra,
        )  # fmt: skip
        count += int(page.get("KeyCount", 0))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            break
    return count


def _count_gcs_objects_up_to(fs: AbstractFileSystem, root: str, cap: int) -> int:
    """Objects under a gs prefix, counted the same way through gcsfs's JSON API call (the
    objects.list pages gcsfs itself uses, without a delimiter: the whole subtree)."""
    bucket, _, key = root.partition("/")
    count, token = 0, None
    while count <= cap:
        extra: dict[str, str] = {"pageToken": token} if token else {}
        page = fs.call(
            "GET", "b/{}/o", bucket, prefix=key + "/" if key else "",
            maxResults=min(1000, cap + 1 - count), fields="items(name),nextPageToken",
            json_out=True, **extra,
        )  # fmt: skip
        count += len(page.get("items") or [])
        token = page.get("nextPageToken")
        if not token:
            break
    return count


# Bounded pre-counts for object stores, whose "directories" fsspec lists whole, prefix by prefix.
_COUNTERS: Final = {"s3": _count_objects_up_to, "gs": _count_gcs_objects_up_to}


def _walk(location: Location, fs: AbstractFileSystem, budget: Budget) -> list[Entry]:
    root = location.path.rstrip("/")
    cap = budget.max_files
    counter = _COUNTERS.get(location.scheme)
    if counter is not None and cap is not None:
        budget.check_count(counter(fs, root, cap))
    entries: list[Entry] = []
    # Directory by directory, so a prefix of millions of keys is stopped at the cap.
    for _, _, files in fs.walk(root, detail=True):
        for info in files.values():
            name = str(info["name"])
            if not name.startswith(root + "/"):
                raise StorageError(f"listing of {location.uri} returned foreign path {name!r}")
            relpath = name[len(root) + 1 :]
            sort_key(relpath)  # rejects "..", empty segments and NUL before anything is written
            entries.append(Entry(relpath, name, info.get("size")))
        budget.check_count(len(entries))
        budget.check_time()
    return entries


def compute_digest(uri: str, policy: FetchPolicy = UNRESTRICTED) -> ArtifactFacts:
    """sha256 digest, total size and file count of the file or folder artifact at `uri`."""
    location = resolve_uri(uri)
    check_location(location, policy)
    budget = Budget(policy.limits, uri)
    with translated_errors("read", uri, budget):
        fs = open_filesystem(location, policy=policy, reuse=True)  # one client for all Models
        hasher = ArtifactHasher()
        for entry in list_entries(location, fs, budget):
            budget.add_file()
            with fs.open(entry.path, "rb", **read_options(location)) as stream:
                content_hash, size = hash_stream(stream, on_chunk=budget.add_bytes)
            hasher.add(entry.relpath, content_hash, size)
        return hasher.facts()


def download(uri: str, dest: str, policy: FetchPolicy = UNRESTRICTED) -> ArtifactFacts:
    """Copy the artifact into `dest` (a single file lands as dest/<basename>) and return the
    facts of the bytes written."""
    facts, _ = _download(uri, dest, policy)
    return facts


def download_and_verify(
    uri: str, dest: str, expected_digest: str | None, policy: FetchPolicy = UNRESTRICTED
) -> ArtifactFacts:
    """`download`, then compare with `expected_digest`; on a mismatch the written files are
    removed (an unverified model must not be served) and `DigestMismatch` is raised."""
    if expected_digest is not None:
        check_digest(expected_digest)
    elif policy.require_digest:
        raise DigestRequired(f"refusing to download {uri} without a digest to verify it against")
    facts, written = _download(uri, dest, policy)
    if expected_digest is not None and facts.digest != expected_digest:
        _remove(written)
        raise DigestMismatch(uri, expected_digest, facts.digest)
    return facts


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def targets_under(dest: str, entries: list[Entry]) -> list[str]:
    """Where each entry lands; refuses any that would resolve outside `dest` (symlinks too)."""
    root = os.path.realpath(dest)
    targets = []
    for entry in entries:
        target = os.path.join(root, *sort_key(entry.relpath).decode().split("/"))
        if not os.path.realpath(target).startswith(root + os.sep):
            raise InvalidArtifact(f"artifact file {entry.relpath!r} would land outside {dest}")
        targets.append(target)
    return targets


def _download(uri: str, dest: str, policy: FetchPolicy) -> tuple[ArtifactFacts, list[str]]:
    location = resolve_uri(uri)
    check_location(location, policy)
    budget = Budget(policy.limits, uri)
    written: list[str] = []
    with translated_errors("download", uri, budget):
        fs = open_filesystem(location, policy=policy)
        entries = list_entries(location, fs, budget)
        targets = targets_under(dest, entries)  # all checked before the first file is opened
        hasher = ArtifactHasher()
        try:
            for entry, target in zip(entries, targets, strict=True):
                budget.add_file()
                os.makedirs(os.path.dirname(target), exist_ok=True)
                partial = target + _PART_SUFFIX
                written.append(partial)
                with (
                    fs.open(entry.path, "rb", **read_options(location)) as stream,
                    open(partial, "wb") as sink,
                ):
                    content_hash, size = hash_stream(stream, sink, on_chunk=budget.add_bytes)
                # Rename only complete files, so a crashed copy never looks like a model file.
                os.replace(partial, target)
                written[-1] = target
                hasher.add(entry.relpath, content_hash, size)
        except BaseException:
            _remove(written)  # a capped, refused or broken download leaves nothing half-there
            raise
        return hasher.facts(), written
