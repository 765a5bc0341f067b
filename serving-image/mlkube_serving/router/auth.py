"""Key auth: `Authorization: Bearer <key>` or `api-key: <key>` against keys in a mounted Secret.

The keys file holds one key per line (blank lines and `#` comments ignored). Kubernetes
updates a mounted Secret by swapping a symlink, so the file is re-read when its (inode, mtime,
size) stamp changes, checked at most once per `check_interval` seconds to keep `stat` off most
requests. Keys are compared as SHA-256 digests with `hmac.compare_digest` against every key,
so neither the position of a match nor the length of a key shows in the timing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable

from mlkube_serving.router.errors import Unauthorized
from mlkube_serving.router.watch import FileStamp, file_stamp

log = logging.getLogger(__name__)


def missing_keys_file(mode: str, keys_file: str | None) -> str | None:
    """Why a config that turns key auth on cannot be served by this replica, or None.

    Key auth is switched on by the config while the keys arrive as a Secret volume, which only
    new router pods mount: applying such a config (by push or by the kubelet's file refresh) to
    a replica started before would refuse every key, valid ones included, until it is gone. It
    keeps its previous config instead; the replicas that mount the keys serve the new one.
    """
    if mode != "key" or keys_file is None or os.path.exists(keys_file):
        return None
    return (
        f"auth.mode is key but {keys_file!r} does not exist on this replica (started without"
        " the keys Secret): keeping the previous config; new replicas serve this one"
    )


def parse_keys(text: str) -> list[str]:
    """Keys from the file's text: one per line, stripped, without blanks and `#` comments."""
    stripped = (line.strip() for line in text.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


def extract_key(authorization: bytes | None, api_key: bytes | None) -> bytes | None:
    """The presented key: a Bearer token wins over `api-key`; None when neither is present."""
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            return token.strip()
    if api_key is not None and api_key.strip():
        return api_key.strip()
    return None


class KeyStore:
    """The accepted keys, reloaded from `path` when the file changes."""

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        check_interval: float = 1.0,
    ) -> None:
        self.path = path
        self._clock = clock
        self._interval = check_interval
        self._digests: tuple[bytes, ...] = ()
        self._stamp: FileStamp | None = None
        self._next_check = float("-inf")
        self.load_error: str | None = None
        self.reloads = 0

    @property
    def key_count(self) -> int:
        return len(self._digests)

    def refresh(self) -> None:
        """Re-read the keys if the file changed; cheap when called on every request."""
        now = self._clock()
        if now < self._next_check:
            return
        self._next_check = now + self._interval
        stamp = file_stamp(self.path)
        if stamp is not None and stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            with open(self.path, encoding="utf-8") as handle:
                keys = parse_keys(handle.read())
        except (OSError, UnicodeDecodeError) as exc:
            # A deleted or unreadable Secret revokes every key: failing closed is the safe side.
            self._digests = ()
            self.load_error = f"cannot read keys file {self.path!r}: {exc}"
            return
        self._digests = tuple(hashlib.sha256(key.encode()).digest() for key in keys)
        self.load_error = None if keys else f"keys file {self.path!r} holds no keys"
        self.reloads += 1

    def authenticate(self, authorization: bytes | None, api_key: bytes | None) -> None:
        """Return when the request carries an accepted key; raise `Unauthorized` otherwise."""
        self.refresh()
        presented = extract_key(authorization, api_key)
        if presented is None:
            raise Unauthorized(
                "missing key: send 'Authorization: Bearer <key>' or 'api-key: <key>'"
            )
        if not self._digests:
            # The reason (a file path, an OS error) is for operators: logged and in /readyz,
            # never told to an unauthenticated client.
            log.warning("refusing a request: no keys are loaded (%s)", self.load_error)
            raise Unauthorized("invalid key")
        digest = hashlib.sha256(presented).digest()
        matched = False
        for accepted in self._digests:
            matched |= hmac.compare_digest(digest, accepted)
        if not matched:
            raise Unauthorized("invalid key")
