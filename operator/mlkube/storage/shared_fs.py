"""One object-store client per (store, credentials) for the operator's artifact reads.

Building an s3fs/gcsfs filesystem creates a new aiobotocore/aiohttp session and client: at
hundreds of Models that setup, not the tiny reads, bounded verification throughput. The
cache key holds a hash of the credential values (never the values), so rotated credentials
get a new client; entries also expire after `TTL_SECONDS`, so nothing lives forever, and
after `IDLE_SECONDS` unused (`expire`, called periodically by the operator): a client with its
botocore service model is ~20 MiB the operator holds only while Models are being verified.
"""

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

from fsspec import AbstractFileSystem

TTL_SECONDS: Final = 300.0
IDLE_SECONDS: Final = 60.0
MAX_ENTRIES: Final = 16
# The environment variables that decide which store and which identity a client talks to.
_KEY_VARS: Final = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN", "AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS",
)  # fmt: skip

_lock = threading.Lock()
# key -> (built at, last used at, client)
_entries: dict[tuple[str, ...], tuple[float, float, AbstractFileSystem]] = {}


def cache_key(
    scheme: str, endpoint: str, timeout: float | None, env: Mapping[str, str]
) -> tuple[str, ...]:
    """Scheme, endpoint, timeout and a sha256 over the credential variables' values."""
    digest = hashlib.sha256()
    for var in _KEY_VARS:
        digest.update(f"{var}={env.get(var, '')}\0".encode())
    return (scheme, endpoint, repr(timeout), digest.hexdigest())


def shared(
    key: tuple[str, ...],
    build: Callable[[], AbstractFileSystem],
    now: Callable[[], float] = time.monotonic,
) -> AbstractFileSystem:
    """The live filesystem for `key`, or a new one from `build` (also after TTL_SECONDS)."""
    with _lock:
        stamp = now()
        _expire(stamp)
        entry = _entries.get(key)
        if entry is not None:
            _entries[key] = (entry[0], stamp, entry[2])
            return entry[2]
        if len(_entries) >= MAX_ENTRIES:  # oldest out: many stores/credentials stay bounded
            del _entries[min(_entries, key=lambda k: _entries[k][0])]
        # Built under the lock: concurrent first verifications share one client, not N.
        fs = build()
        _entries[key] = (stamp, stamp, fs)
        return fs


def expire(now: Callable[[], float] = time.monotonic) -> int:
    """Drop the clients past their TTL or idle for IDLE_SECONDS; how many are left."""
    with _lock:
        _expire(now())
        return len(_entries)


def _expire(stamp: float) -> None:
    for stale in [
        k for k, (born, used, _) in _entries.items()
        if stamp - born >= TTL_SECONDS or stamp - used >= IDLE_SECONDS
    ]:  # fmt: skip
        del _entries[stale]


def clear() -> None:
    with _lock:
        _entries.clear()
