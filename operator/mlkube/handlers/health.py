"""The liveness probe: fails when the operator has not reached the API server for too long.

Served by Kopf on `--liveness` (the chart's livenessProbe). A probe that always says "alive"
keeps a wedged operator (an expired token, a dead connection pool, a stuck event loop) running
forever; this one answers from the event loop (a stuck loop does not answer at all) and makes
one cheap API call (`GET /version`) per probe, at most every PROBE_INTERVAL. It fails, and the
kubelet restarts the pod, only when no call has succeeded for MLKUBE_LIVENESS_MAX_AGE_SECONDS:
a short API outage is ridden out, a lasting one restarts into a fresh login.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Final

import kopf

from mlkube.handlers.clients import kube

ENV_MAX_AGE: Final = "MLKUBE_LIVENESS_MAX_AGE_SECONDS"
DEFAULT_MAX_AGE: Final = 180.0
CALL_TIMEOUT: Final = 5.0


class ApiContact:
    """When the API server last answered (monotonic seconds), and the last failure."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.last_ok = clock()  # the start counts: a pod is not killed before its first probe
        self.last_error = ""

    def age(self) -> float:
        return float(self._clock() - self.last_ok)

    async def check(self, max_age: float) -> float:
        """Call the API server; the seconds since the last success, or raise past `max_age`."""
        try:
            await asyncio.wait_for(
                asyncio.to_thread(kube().request, "GET", "/version"), CALL_TIMEOUT
            )
            self.last_ok = self._clock()
        except Exception as err:  # any failure is the observation, reported below
            self.last_error = f"{type(err).__name__}: {err}"
        age = self.age()
        if age > max_age:
            raise kopf.PermanentError(
                f"no successful API call for {age:.0f}s (> {max_age:.0f}s): {self.last_error}"
            )
        return round(age, 1)


CONTACT: Final = ApiContact()


def max_age() -> float:
    raw = os.environ.get(ENV_MAX_AGE, "")
    try:
        return float(raw) if raw.strip() else DEFAULT_MAX_AGE
    except ValueError:
        return DEFAULT_MAX_AGE


@kopf.on.probe(id="apiContactAgeSeconds")
async def api_contact(**_: Any) -> float:
    """Reported on the liveness endpoint; raising makes Kopf answer 500 (the pod restarts)."""
    return await CONTACT.check(max_age())
