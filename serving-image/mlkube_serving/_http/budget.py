"""Byte budgets: how much request and response data a process may hold at once.

Counting requests does not bound memory when one request may carry 32 MiB; these budgets
count bytes. Defaults follow the container's memory limit when the pod publishes it (the
builders set `MLKUBE_MEMORY_LIMIT_BYTES` from the downward API), else a fixed size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlkube.contract import ENV_MEMORY_LIMIT
from mlkube_serving._http.errors import ServiceUnavailable

MiB = 1024 * 1024


def memory_limit(environ: Mapping[str, str] | None = None) -> int | None:
    """The container memory limit in bytes published by the pod, or None (unset, unlimited)."""
    raw = (os.environ if environ is None else environ).get(ENV_MEMORY_LIMIT, "").strip()
    if not raw.isdigit() or int(raw) <= 0:
        return None
    return int(raw)


def derived_budget(fraction: float, fallback: int, environ: Mapping[str, str] | None = None) -> int:
    """`fraction` of the memory limit when one is published, else `fallback` bytes.

    Without a limit the downward API reports the node's allocatable memory, which may be far
    more than the process should buffer, so the fallback also caps the derived value.
    """
    limit = memory_limit(environ)
    if limit is None:
        return fallback
    return max(MiB, min(fallback, int(limit * fraction)))


class ByteBudget:
    """A counter of reserved bytes with a ceiling; single-threaded (one event loop) use.

    `setting` names the knob that sets the ceiling, so a refusal says what to raise; `holds`
    says what the bytes are.
    """

    __slots__ = ("holds", "limit", "setting", "used")

    def __init__(self, limit: int, setting: str = "", holds: str = "request bodies") -> None:
        self.limit = limit
        self.setting = setting
        self.holds = holds
        self.used = 0

    def try_reserve(self, size: int) -> bool:
        """Reserve `size` bytes if they fit; False (nothing reserved) otherwise."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used -= size

    def spent(self, size: int, what: str = "") -> ServiceUnavailable:
        """The 503 for a `size`-byte reservation (of `what`, if said) that did not fit."""
        knob = f" ({self.setting})" if self.setting else ""
        more = f"{size} more bytes{f' of {what}' if what else ''}"
        return ServiceUnavailable(
            f"already holding {self.used} bytes of {self.holds}; {more} would pass "
            f"the {self.limit}-byte budget{knob}: retry later"
        )
