"""Adaptive batching: concurrent requests to one model merged into one runtime call.

A request joins the open batch of its layout (same model, input names, dtypes and trailing
shapes, requested outputs; no parameters). The batch runs when the first of these holds:
- it holds `max_batch_size` rows;
- every request this worker is serving is waiting in a batch (no one else can join: the
  adaptive part, so a lone request at low load runs at once instead of waiting);
- `max_latency` passed since the batch opened.
The runtime gets the rows concatenated along the first axis and each request gets back exactly
its rows of every output. An output that is not one row per input row (an aggregate), or a
batch whose call fails, is run again request by request: a failing row fails only its own
request, and results never depend on what a request was batched with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlkube import contract as c
from mlkube_serving import metrics
from mlkube_serving.dataplane import DataPlane, ModelEntry
from mlkube_serving.tensors import InferenceRequest, InferenceResponse, Tensor

log = logging.getLogger(__name__)

Key = tuple[Any, ...]


@dataclass(frozen=True)
class BatchSettings:
    """`max_batch_size` rows per runtime call; `max_latency` seconds a request may wait."""

    max_batch_size: int
    max_latency: float

    def __post_init__(self) -> None:
        if not 2 <= self.max_batch_size <= c.MAX_BATCH_ROWS:
            raise ValueError(f"max batch size {self.max_batch_size} must be 2..{c.MAX_BATCH_ROWS}")
        if not 0 < self.max_latency <= 10:
            raise ValueError(f"max batch latency {self.max_latency}s must be in (0, 10]")


def batch_key(entry: ModelEntry, request: InferenceRequest) -> tuple[Key, int] | None:
    """(layout key, rows) of a request that may share a runtime call; None when it may not
    (parameters, scalar inputs, inputs of unequal row counts)."""
    if request.parameters or not request.inputs:
        return None
    rows = -1
    layout = []
    for tensor in request.inputs:
        data = tensor.data
        if tensor.parameters or data.ndim == 0 or data.dtype.kind == "O":
            return None
        if rows < 0:
            rows = data.shape[0]
        elif data.shape[0] != rows:
            return None
        layout.append((tensor.name, tensor.datatype, data.dtype.str, data.shape[1:]))
    if rows <= 0:
        return None
    outputs = tuple(request.outputs) if request.outputs is not None else None
    return (id(entry), tuple(layout), outputs), rows


@dataclass
class _Batch:
    entry: ModelEntry
    requests: list[InferenceRequest] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    futures: list[asyncio.Future[InferenceResponse]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    total: int = 0


class Batcher:
    """Open batches of one server worker, on its event loop."""

    def __init__(
        self,
        dataplane: DataPlane,
        settings: BatchSettings,
        inflight: Callable[[], int],
        executor: Executor | None = None,
    ) -> None:
        """`inflight`: requests the worker is serving now; `executor`: where runtimes that
        are not `inline_safe` run (inline-safe ones, and all without an executor, run on the
        loop)."""
        self.dataplane = dataplane
        self.settings = settings
        self._inflight = inflight
        self._executor = executor
        self._open: dict[Key, _Batch] = {}
        self._waiting = 0
        self._running = 0  # batches in the executor: while one runs, open ones keep filling

    async def infer(self, entry: ModelEntry, request: InferenceRequest) -> InferenceResponse:
        keyed = batch_key(entry, request)
        if keyed is None or keyed[1] >= self.settings.max_batch_size:
            return await self._alone(entry, request)
        key, rows = keyed
        loop = asyncio.get_running_loop()
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch(entry)
            batch.timer = loop.call_later(self.settings.max_latency, self._close, key, batch)
        future: asyncio.Future[InferenceResponse] = loop.create_future()
        batch.requests.append(request)
        batch.rows.append(rows)
        batch.futures.append(future)
        batch.total += rows
        self._waiting += 1
        if batch.total >= self.settings.max_batch_size:
            self._close(key, batch)
        elif self._waiting >= self._inflight() and not self._running:
            loop.call_soon(self._close, key, batch)  # everyone who could join has
        try:
            return await future
        finally:
            self._waiting -= 1

    def _executor_for(self, entry: ModelEntry) -> Executor | None:
        return None if entry.runtime.inline_safe else self._executor

    async def _alone(self, entry: ModelEntry, request: InferenceRequest) -> InferenceResponse:
        executor = self._executor_for(entry)
        if executor is None:
            return self.dataplane.infer_entry(entry, request)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self.dataplane.infer_entry, entry, request)

    def _close(self, key: Key, batch: _Batch) -> None:
        """Take `batch` out of the open ones and run it (once: later calls find it gone)."""
        if self._open.get(key) is not batch:
            return
        del self._open[key]
        if batch.timer is not None:
            batch.timer.cancel()
        executor = self._executor_for(batch.entry)
        if executor is None:
            try:
                results = run_batch(self.dataplane, batch.entry, batch.requests, batch.rows)
            except Exception as exc:  # every waiter gets it: none may be left waiting
                results = [exc] * len(batch.futures)
            self._settle(batch, results)
            return
        loop = asyncio.get_running_loop()
        self._running += 1
        done = loop.run_in_executor(executor, run_batch, self.dataplane, batch.entry,
                                    batch.requests, batch.rows)  # fmt: skip
        done.add_done_callback(lambda f: self._ran(batch, _results(f, len(batch.futures))))

    def _ran(self, batch: _Batch, results: list[InferenceResponse | BaseException]) -> None:
        """A batch came back from the executor: settle it, then run what filled meanwhile
        (requests that arrived while it ran waited for it anyway: one thread)."""
        self._running -= 1
        self._settle(batch, results)
        if not self._running:
            for key, waiting in list(self._open.items()):
                self._close(key, waiting)

    def _settle(self, batch: _Batch, results: list[InferenceResponse | BaseException]) -> None:
        metrics.observe_batch(batch.entry.name, len(batch.futures))
        for future, result in zip(batch.futures, results, strict=True):
            if future.done():  # its request was cancelled (client gone, timeout)
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


def _results(
    done: asyncio.Future[list[InferenceResponse | BaseException]], count: int
) -> list[InferenceResponse | BaseException]:
    if done.cancelled():  # the pool shut down first
        return [asyncio.CancelledError("the inference pool shut down")] * count
    error = done.exception()
    return [error] * count if error is not None else done.result()


def run_batch(
    plane: DataPlane, entry: ModelEntry, requests: list[InferenceRequest], rows: list[int]
) -> list[InferenceResponse | BaseException]:
    """Every request's response (or error), from one runtime call when it can be split."""
    if len(requests) > 1:
        merged = InferenceRequest(
            [
                Tensor(t.name, np.concatenate([r.inputs[i].data for r in requests]), t.datatype)
                for i, t in enumerate(requests[0].inputs)
            ],
            outputs=requests[0].outputs,
        )
        try:
            joint = plane.predict_entry(entry, merged)
        except Exception as exc:  # one bad row: find out whose, request by request
            log.debug("batch of %d failed (%s); running its requests one by one",
                      len(requests), exc)  # fmt: skip
        else:
            split = split_outputs(joint, rows)
            if split is not None:
                pairs = zip(requests, split, strict=True)
                return [plane.respond(entry, request, outputs) for request, outputs in pairs]
    results: list[InferenceResponse | BaseException] = []
    for request in requests:
        try:
            results.append(plane.infer_entry(entry, request))
        except Exception as exc:
            results.append(exc)
    return results


def split_outputs(outputs: list[Tensor], rows: list[int]) -> list[list[Tensor]] | None:
    """Each request's rows of every output; None when an output is not one row per input row."""
    total = sum(rows)
    for tensor in outputs:
        if tensor.data.ndim == 0 or tensor.data.shape[0] != total:
            return None
    bounds = np.cumsum(rows)[:-1]
    parts = [np.split(t.data, bounds) for t in outputs]
    return [
        [Tensor(t.name, parts[j][i], t.datatype, t.parameters) for j, t in enumerate(outputs)]
        for i in range(len(rows))
    ]
