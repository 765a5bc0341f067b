"""Artifact URIs -> (filesystem, path): the only place that knows the supported schemes.

Parsing is pure and never imports a cloud SDK; `open_filesystem` imports s3fs or gcsfs only when
that scheme is used, so the operator and a file:// or pvc:// initializer stay light. Credentials
come from the standard environment variables, never from custom resources.
"""

import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem

from mlkube.contract import ENV_PVC_ROOT, ENV_S3_ENDPOINT_URL, PVC_ROOT
from mlkube.storage import shared_fs
from mlkube.storage.errors import ArtifactLocationRefused, StorageError, UnsupportedScheme
from mlkube.storage.policy import UNRESTRICTED, FetchPolicy

SCHEMES: Final = ("s3", "gs", "https", "http", "pvc", "file")
# Cloud reads and multipart writes use blocks of this size, bounding memory per open file.
BLOCK_SIZE: Final = 8 * 1024 * 1024
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Location:
    """A parsed artifact URI: `path` is what the scheme's fsspec filesystem expects."""

    uri: str
    scheme: str
    path: str

    @property
    def is_local(self) -> bool:
        return self.scheme in ("file", "pvc")

    @property
    def is_http(self) -> bool:
        return self.scheme in ("http", "https")


def resolve(uri: str, env: Mapping[str, str] | None = None) -> Location:
    """Parse and validate `uri`; pvc:// maps under $MLKUBE_PVC_ROOT (default /mnt/pvc)."""
    environ = os.environ if env is None else env
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        hint = " (local paths need file:///absolute/path)" if not scheme else ""
        raise UnsupportedScheme(
            f"unsupported artifact URI {uri!r}: scheme must be one of {', '.join(SCHEMES)}{hint}"
        )
    if scheme in ("http", "https"):
        if not parts.netloc:
            raise StorageError(f"URL without host: {uri!r}")
        return Location(uri, scheme, uri)
    if scheme in ("s3", "gs"):
        if not parts.netloc:
            raise StorageError(f"{scheme}:// URI without bucket: {uri!r}")
        key = parts.path.strip("/")
        return Location(uri, scheme, f"{parts.netloc}/{key}" if key else parts.netloc)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"file:// URI must be local (file:///path): {uri!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise StorageError(f"file:// URI needs an absolute path: {uri!r}")
        return Location(uri, scheme, _normalize(path))
    return Location(uri, scheme, _resolve_pvc(uri, parts.netloc, unquote(parts.path), environ))


def _resolve_pvc(uri: str, claim: str, path: str, env: Mapping[str, str]) -> str:
    if not _DNS_LABEL.match(claim):
        raise StorageError(f"pvc:// URI needs a claim name (pvc://claim/path): {uri!r}")
    claim_root = posixpath.join(env.get(ENV_PVC_ROOT) or PVC_ROOT, claim)
    full = _normalize(posixpath.join(claim_root, path.lstrip("/")))
    # A path like pvc://claim/../other must not reach another claim's mount.
    if full != claim_root and not full.startswith(claim_root.rstrip("/") + "/"):
        raise StorageError(f"pvc:// path escapes its claim: {uri!r}")
    return full


def _normalize(path: str) -> str:
    normalized = posixpath.normpath(path)
    return "/" + normalized.lstrip("/")


def check_location(location: Location, policy: FetchPolicy) -> None:
    """Refuse, before any I/O, a location the policy forbids by its URI alone."""
    if location.is_local and not policy.allow_local:
        raise ArtifactLocationRefused(
            f"refusing to read {location.uri}: {location.scheme}:// paths are the reader's own "
            "filesystem (allowed in dev mode only)"
        )
    if location.is_http:
        policy.check_host(urlsplit(location.uri).hostname or "", location.uri)


def open_filesystem(
    location: Location,
    env: Mapping[str, str] | None = None,
    policy: FetchPolicy = UNRESTRICTED,
    *,
    reuse: bool = False,
) -> AbstractFileSystem:
    """A filesystem for the location's scheme, bounded by `policy`: fresh (uncached), or with
    `reuse` the s3/gs client shared per (store, credentials) for a bounded time (shared_fs)."""
    environ = os.environ if env is None else env
    if location.is_local:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(auto_mkdir=True)
    if location.scheme in ("s3", "gs") and reuse:
        timeout = policy.limits.timeout if location.scheme == "s3" else None
        endpoint = environ.get(ENV_S3_ENDPOINT_URL, "") if location.scheme == "s3" else ""
        key = shared_fs.cache_key(location.scheme, endpoint, timeout, environ)
        return shared_fs.shared(key, lambda: open_filesystem(location, environ, policy))
    if location.scheme == "s3":
        return _open_s3(environ, policy.limits.timeout)
    if location.scheme == "gs":
        return _open_gcs(environ)
    try:
        from mlkube.storage.netguard import guarded_http_filesystem
    except ImportError as exc:
        raise StorageError(f"http(s) artifacts need aiohttp installed: {exc}") from exc
    return guarded_http_filesystem(policy)


def _open_s3(env: Mapping[str, str], timeout: float | None = None) -> AbstractFileSystem:
    try:
        import s3fs
    except ImportError as exc:
        raise StorageError("s3:// artifacts need s3fs: pip install s3fs") from exc
    endpoint = env.get(ENV_S3_ENDPOINT_URL) or env.get("AWS_ENDPOINT_URL")
    client_kwargs: dict[str, Any] = {"endpoint_url": endpoint} if endpoint else {}
    # Per-request timeouts; the transfer's wall clock is checked between chunks as well.
    config_kwargs = {"connect_timeout": timeout, "read_timeout": timeout} if timeout else {}
    fs: AbstractFileSystem = s3fs.S3FileSystem(
        skip_instance_cache=True,
        use_listings_cache=False,
        client_kwargs=client_kwargs,
        config_kwargs=config_kwargs,
    )
    return fs


def _open_gcs(env: Mapping[str, str]) -> AbstractFileSystem:
    try:
        import gcsfs
    except ImportError as exc:
        raise StorageError("gs:// artifacts need gcsfs: pip install gcsfs") from exc
    credentials = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    kwargs: dict[str, Any] = {"token": credentials} if credentials else {}
    fs: AbstractFileSystem = gcsfs.GCSFileSystem(skip_instance_cache=True, **kwargs)
    return fs


def read_options(location: Location) -> dict[str, Any]:
    """fsspec `open` options that stream instead of buffering whole objects."""
    if location.is_http:
        return {"block_size": 0}
    if location.scheme in ("s3", "gs"):
        return {"block_size": BLOCK_SIZE, "cache_type": "readahead"}
    return {}


def write_options(location: Location) -> dict[str, Any]:
    return {"block_size": BLOCK_SIZE} if location.scheme in ("s3", "gs") else {}
