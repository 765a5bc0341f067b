"""The operator's I/O on the pipeline artifact store: JSON documents, listings, digests.

docs/pipelines.md §3: cache entries and step summaries are small JSON files in the artifact
store (never ConfigMaps: Argo's 1 MiB memoization ConfigMaps are what the note avoids), and a
cached output is trusted only after it is re-verified. Verification is cheap when the store's
listing did not change: a listing fingerprint (relative names, sizes, ETags or mtimes) is
recorded with the digest, and the full digest is recomputed only when the fingerprint differs
or the store gives neither ETag nor mtime. Reads go through `mlkube.storage` with the
operator's fetch policy and the per-namespace store allow-list, with byte caps.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any, Final

from mlkube.builders.operator_config import OperatorConfig, fetch_policy, store_problem
from mlkube.controllers.memo import FingerprintMemo
from mlkube.storage.bounded import read_stream_bounded
from mlkube.storage.errors import ArtifactNotFound, StorageError
from mlkube.storage.locations import (
    Location,
    check_location,
    open_filesystem,
    resolve,
    write_options,
)
from mlkube.storage.transfer import compute_digest, translated_errors

JSON_CAP: Final = 256 * 1024
_MEMO_SIZE: Final = 4096


class StoreUnreadable(Exception):
    """The operator may not or cannot use this location now (the caller decides: retry)."""


def _open(uri: str, namespace: str, config: OperatorConfig) -> tuple[Location, Any]:
    refused = store_problem(uri, namespace, config)
    if refused:
        raise StoreUnreadable(refused)
    policy = fetch_policy(config)
    try:
        location = resolve(uri)
        check_location(location, policy)
        return location, open_filesystem(location, policy=policy)
    except StorageError as err:
        raise StoreUnreadable(str(err)) from err


def read_json(uri: str, namespace: str, config: OperatorConfig, cap: int = JSON_CAP) -> Any:
    """The parsed document, None when it does not exist or is not JSON; StoreUnreadable when
    the store cannot be read."""
    location, fs = _open(uri, namespace, config)
    try:
        with fs.open(location.path, "rb") as stream:
            data = read_stream_bounded(stream, cap, uri)
    except FileNotFoundError:
        return None
    except (OSError, StorageError, ValueError) as err:
        raise StoreUnreadable(f"reading {uri}: {err}") from err
    try:
        return json.loads(data)
    except ValueError:
        return None


def write_json(uri: str, namespace: str, config: OperatorConfig, doc: Any) -> None:
    location, fs = _open(uri, namespace, config)
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    try:
        with fs.open(location.path, "wb", **write_options(location)) as stream:
            stream.write(body)
    except (OSError, StorageError, ValueError) as err:
        raise StoreUnreadable(f"writing {uri}: {err}") from err


def delete(uri: str, namespace: str, config: OperatorConfig) -> bool:
    location, fs = _open(uri, namespace, config)
    try:
        fs.rm(location.path)
    except FileNotFoundError:
        return False
    except (OSError, StorageError, ValueError) as err:
        raise StoreUnreadable(f"deleting {uri}: {err}") from err
    return True


def fingerprint(uri: str, namespace: str, config: OperatorConfig) -> str | None:
    """sha256 over the listing (names, sizes, ETags/mtimes) of the file or folder at `uri`;
    "" when nothing is there; None when the store gives no ETag or mtime for some file (then
    only a full digest can say whether it changed)."""
    location, fs = _open(uri, namespace, config)
    root = location.path.rstrip("/")
    try:
        if not fs.exists(root):
            return ""
        info = fs.info(root)
        if info.get("type") == "directory":
            found = fs.find(root, detail=True)
            entries = [(str(k)[len(root) + 1 :], v) for k, v in sorted(found.items())]
        else:
            entries = [(posixpath.basename(root), info)]
    except FileNotFoundError:
        return ""
    except (OSError, StorageError, ValueError) as err:
        raise StoreUnreadable(f"listing {uri}: {err}") from err
    if not entries:
        return ""
    rows = []
    for relpath, entry in entries:
        stamp = (
            entry.get("ETag")
            or entry.get("etag")
            or entry.get("mtime")
            or entry.get("LastModified")
        )
        if stamp is None:
            return None
        rows.append([relpath, entry.get("size"), str(stamp)])
    return "sha256:" + hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def digest(uri: str, namespace: str, config: OperatorConfig) -> str:
    """The registry's content digest of the artifact at `uri` (reads every byte, capped)."""
    if refused := store_problem(uri, namespace, config):
        raise StoreUnreadable(refused)
    try:
        return compute_digest(uri, fetch_policy(config)).digest
    except StorageError as err:
        raise StoreUnreadable(f"digest of {uri}: {err}") from err


def list_files(uri: str, namespace: str, config: OperatorConfig) -> list[tuple[str, str]]:
    """The files directly below the folder `uri` as (uri, listing stamp: ETag, mtime or size),
    by name; [] when the folder does not exist (the cache GC walks the entries with it)."""
    location, fs = _open(uri.rstrip("/") + "/", namespace, config)
    root = location.path.rstrip("/")
    try:
        with translated_errors("list", uri):  # any transport error (botocore's too)
            found = fs.ls(root, detail=True)
    except ArtifactNotFound:
        return []
    except StorageError as err:
        raise StoreUnreadable(f"listing {uri}: {err}") from err
    base = uri.rstrip("/")
    out = []
    for entry in found:
        if entry.get("type") != "file":
            continue
        stamp = entry.get("ETag") or entry.get("mtime") or entry.get("LastModified")
        name = posixpath.basename(str(entry["name"]).rstrip("/"))
        out.append((f"{base}/{name}", f"{stamp}/{entry.get('size')}"))
    return sorted(out)


# uri → (listing fingerprint, digest), process-wide, so an unchanged prefix is not re-read on
# every reconcile; the durable copy lives in the cache store (`pipeline_cache`).
DigestMemo: Final = FingerprintMemo[str](_MEMO_SIZE)
