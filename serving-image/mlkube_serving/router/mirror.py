"""Fire-and-forget mirroring: copies of live requests sent to candidate deployments.

The live path only calls `submit` after its response is sent, which starts a task or queues
the copy and never waits. At most `concurrency` copies are in flight per process, at most
`queue_size` wait, and all of them together hold at most `max_bytes` (request body, live answer
and the shadow's answer, capped per copy); anything beyond is shed and counted by reason
(`queue_full`, `byte_budget`), so a slow candidate can never build up memory or delay live
traffic. The mirror task also compares the shadow's predictions with
the live ones (see agreement.py), which keeps that parsing off the live path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from mlkube.contract import HEADER_MIRRORED
from mlkube_serving._http.budget import ByteBudget
from mlkube_serving._http.client import serialize_request
from mlkube_serving.router.agreement import compare_responses
from mlkube_serving.router.errors import (
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnreachable,
)
from mlkube_serving.router.metrics import RouterMetrics
from mlkube_serving.router.table import Route

_MIRROR_LINE = HEADER_MIRRORED.encode() + b": true\r\n"
# A shadow's answer may be this much larger than the live one before it is cut off: it is
# compared with the live answer, so a much larger one is a disagreement anyway.
_SHADOW_SLACK = 64 * 1024


@dataclass(slots=True)
class MirrorJob:
    """One copy to send, with the live answer it will be compared with."""

    route: Route
    method: bytes
    target: bytes
    headers: bytes
    body: bytes
    live_status: int
    live_body: bytes
    timeout: float
    tolerance: float
    cost: int = 0  # bytes reserved in the mirror budget while this copy is held


def shadow_cap(live_body: bytes) -> int:
    """The largest shadow answer a copy keeps: twice the live answer plus some slack."""
    return 2 * len(live_body) + _SHADOW_SLACK


def reason_of(exc: UpstreamError) -> str:
    """The `reason` label of an upstream failure."""
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, UpstreamUnreachable):
        return "unreachable"
    if isinstance(exc, UpstreamTooLarge):
        return "too_large"
    return "protocol"


class MirrorDispatcher:
    """Runs mirror jobs in the background within a concurrency, a queue and a byte bound."""

    def __init__(self, metrics: RouterMetrics) -> None:
        self._metrics = metrics
        self._pending: deque[MirrorJob] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self.budget = ByteBudget(0)
        self.sent = 0

    @property
    def backlog(self) -> int:
        return len(self._pending) + len(self._tasks)

    def submit(self, job: MirrorJob, *, concurrency: int, queue_size: int, max_bytes: int) -> None:
        """Start or queue `job`, or shed it (counted) when a bound is reached. Never blocks."""
        self.budget.limit = max_bytes  # a reload may change it; held copies stay counted
        if len(self._tasks) >= concurrency and len(self._pending) >= queue_size:
            self._metrics.mirror_dropped.labels(job.route.name, "queue_full").inc()
            return
        job.cost = len(job.body) + len(job.headers) + len(job.live_body) + shadow_cap(job.live_body)
        if not self.budget.try_reserve(job.cost):
            job.cost = 0
            self._metrics.mirror_dropped.labels(job.route.name, "byte_budget").inc()
            return
        if len(self._tasks) < concurrency:
            task = asyncio.get_running_loop().create_task(self._work(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._pending.append(job)

    async def _work(self, job: MirrorJob) -> None:
        await self._send(job)
        while self._pending:
            await self._send(self._pending.popleft())

    async def _send(self, job: MirrorJob) -> None:
        try:
            await self._exchange(job)
        finally:
            self.budget.release(job.cost)
            job.cost = 0

    async def _exchange(self, job: MirrorJob) -> None:
        name = job.route.name
        data = serialize_request(
            job.method, job.target, job.route.host_line, job.headers + _MIRROR_LINE, job.body
        )
        self.sent += 1
        start = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + job.timeout
        try:
            response = await job.route.pool.request(
                data, deadline, max_response_bytes=shadow_cap(job.live_body)
            )
        except UpstreamError as exc:
            self._metrics.upstream_errors.labels(name, reason_of(exc)).inc()
            self._metrics.observe_request(name, exc.status, "mirror", -1.0)
            return
        self._metrics.observe_request(name, response.status, "mirror", time.perf_counter() - start)
        self._record_agreement(job, response.status, response.body)

    def _record_agreement(self, job: MirrorJob, status: int, body: bytes) -> None:
        name = job.route.name
        verdict = None
        if 200 <= job.live_status < 300 and 200 <= status < 300:
            verdict = compare_responses(job.live_body, body, job.tolerance)
        if verdict is None:
            self._metrics.mirror_uncomparable.labels(name).inc()
            return
        self._metrics.mirror_compared.labels(name).inc()
        if verdict:
            self._metrics.mirror_agreement.labels(name).inc()

    async def drain(self, timeout: float) -> None:
        """Let in-flight copies finish for up to `timeout` seconds, then cancel the rest."""
        for job in self._pending:
            self.budget.release(job.cost)
        self._pending.clear()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
