"""The operator's config push: `PUT /-/config` with a signed body, applied at once.

The kubelet refreshes a ConfigMap volume up to a minute after the write: too slow for "traffic
off a failing candidate within one analysis interval + 2 s" (docs/rollouts.md §6). So the
operator also PUTs the bytes it wrote to each Ready replica, signed with HMAC-SHA256 under a
per-endpoint key mounted from a Secret (header `x-mlkube-signature: sha256=<hex>`). A push is
applied only with a valid signature and a revision newer than the served one, so neither a
replayed nor a reordered push installs an older split (409); the file watcher ignores a file
older than what is served for the same reason (a late kubelet swap). Without a key file every
push is refused (403) and the file stays the only source, as before.

With several worker processes (one socket) a push reaches one of them: that worker writes the
accepted bytes to a file shared by the workers (`MLKUBE_ROUTER_PUSH_SHARE`, set by the
supervisor), which the others pick up on their next file poll (about a second).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from mlkube.contract import CONFIG_SIGNATURE_PREFIX
from mlkube_serving.router.auth import missing_keys_file
from mlkube_serving.router.config import RouterConfig, parse_config_bytes
from mlkube_serving.router.errors import ConfigError
from mlkube_serving.router.watch import FileStamp, file_stamp

log = logging.getLogger("mlkube_serving.router")

MAX_PUSH_BYTES: Final = 1024 * 1024  # a config is a few KiB; anything near this is not one
ENV_PUSH_SHARE: Final = "MLKUBE_ROUTER_PUSH_SHARE"


def signature(key: bytes, body: bytes) -> str:
    """The `x-mlkube-signature` value of `body` under `key`."""
    return CONFIG_SIGNATURE_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


class PushKey:
    """The push key from a mounted Secret file, re-read when the kubelet swaps it (checked at
    most once per `check_interval`); None while the file is missing or empty."""

    def __init__(
        self, path: str, *, clock: Callable[[], float] = time.monotonic, check_interval: float = 1.0
    ) -> None:
        self.path = path
        self._clock = clock
        self._interval = check_interval
        self._next_check = float("-inf")
        self._stamp: FileStamp | None = None
        self._key: bytes | None = None

    def current(self) -> bytes | None:
        now = self._clock()
        if now < self._next_check:
            return self._key
        self._next_check = now + self._interval
        stamp = file_stamp(self.path)
        if stamp is not None and stamp == self._stamp:
            return self._key
        self._stamp = stamp
        try:
            with open(self.path, "rb") as handle:
                key = handle.read().strip()
        except OSError as exc:
            log.warning("config push key %s unreadable: %s (pushes refused)", self.path, exc)
            key = b""
        self._key = key or None  # an empty key would let anyone sign
        return self._key


@dataclass(frozen=True)
class PushAnswer:
    """The HTTP answer to a push, its metric result, and the config to apply (if accepted)."""

    status: int
    body: dict[str, Any]
    result: str  # ok | forbidden | conflict | invalid
    config: RouterConfig | None = None


def _refused(status: int, result: str, error: str, served: RouterConfig | None) -> PushAnswer:
    body: dict[str, Any] = {"error": error}
    if served is not None:
        body.update(revision=served.revision, hash=served.source_hash)
    return PushAnswer(status, body, result)


def judge_push(
    key: bytes | None, presented: bytes | None, body: bytes, served: RouterConfig | None
) -> PushAnswer:
    """Accept or refuse one push (pure): 403 without a key or a valid signature, 400 for a
    config that does not parse, 409 for a revision not newer than the served one."""
    if key is None:
        return _refused(403, "forbidden", "config push is not enabled: no push key", served)
    expected = signature(key, body).encode()
    if presented is None or not hmac.compare_digest(expected, presented.strip()):
        return _refused(403, "forbidden", "invalid or missing config signature", served)
    try:
        config = parse_config_bytes(body)
    except ConfigError as exc:
        return _refused(400, "invalid", exc.message, served)
    unservable = missing_keys_file(config.auth.mode, config.auth.keys_file)
    if unservable is not None and served is not None:
        return _refused(409, "conflict", unservable, served)
    if served is not None and config.revision <= served.revision:
        return _refused(
            409,
            "conflict",
            f"revision {config.revision} is not newer than the served revision {served.revision}",
            served,
        )
    answer = {"loaded": True, "revision": config.revision, "hash": config.source_hash}
    return PushAnswer(200, answer, "ok", config)


def is_stale(candidate: RouterConfig, served: RouterConfig | None) -> bool:
    """A file older than the served config (a pushed one): keep serving what we have."""
    return served is not None and candidate.revision < served.revision


def share(path: str, body: bytes) -> None:
    """Hand an accepted push to the other workers: atomic replace, so none reads half a file."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".push-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not share the pushed config with the other workers: %s", exc)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
