"""Adaptive batching: results identical to unbatched ones, in order, a failing row failing only
its own request, and the batch closing as soon as no one else can join."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube_serving.batching import Batcher, BatchSettings, batch_key, split_outputs
from mlkube_serving.dataplane import DataPlane, ModelEntry
from mlkube_serving.errors import InvalidRequest
from mlkube_serving.runtimes.base import ModelRuntime
from mlkube_serving.tensors import InferenceRequest, InferenceResponse, Tensor


class RowModel:
    """Per row: the sum and the row's first value doubled; a negative value fails the call
    (what a runtime does with a bad row: the whole call raises)."""

    feature_names = None
    n_features = 3
    inline_safe = True

    def __init__(self) -> None:
        self.calls: list[int] = []  # rows per call

    def predict(self, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> list[Tensor]:
        data = inputs[0].data
        self.calls.append(len(data))
        if (data < 0).any():
            raise InvalidRequest("negative values are not allowed")
        return [Tensor("sum", data.sum(axis=1), "FP64"), Tensor("twice", data[:, :1] * 2, "FP64")]


class ThreadModel(RowModel):
    inline_safe = False


def entry_of(model: RowModel) -> tuple[DataPlane, ModelEntry]:
    plane = DataPlane()
    entry = ModelEntry("m", None, cast(ModelRuntime, model), ready=True)
    return plane, entry


def request(rows: list[list[float]], rid: str | None = None) -> InferenceRequest:
    return InferenceRequest([Tensor("input-0", np.array(rows, dtype=np.float64), "FP64")], rid)


def outcome(result: InferenceResponse | BaseException) -> Any:
    if isinstance(result, BaseException):
        return ("error", type(result).__name__, str(result))
    return [(t.name, t.data.tolist()) for t in result.outputs], result.id


async def run_concurrently(
    batcher: Batcher, entry: ModelEntry, requests: list[InferenceRequest]
) -> list[Any]:
    results = await asyncio.gather(*(batcher.infer(entry, r) for r in requests),
                                   return_exceptions=True)  # fmt: skip
    return [outcome(r) for r in results]


rows_st = st.lists(
    st.lists(st.floats(-1, 100, allow_nan=False, width=32), min_size=3, max_size=3),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(rows_st, min_size=1, max_size=12), st.integers(2, 16), st.booleans())
def test_batched_results_equal_unbatched_ones_in_order(
    batches: list[list[list[float]]], size: int, threaded: bool
) -> None:
    model = ThreadModel() if threaded else RowModel()
    plane, entry = entry_of(model)
    requests = [request(rows, f"r{i}") for i, rows in enumerate(batches)]
    expected = []
    for r in requests:
        try:
            expected.append(outcome(plane.infer_entry(entry, r)))
        except Exception as exc:
            expected.append(outcome(exc))
    model.calls.clear()
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(plane, BatchSettings(size, 0.05), lambda: len(requests), pool)
        got = asyncio.run(run_concurrently(batcher, entry, requests))
    assert got == expected  # same answers, same order; a bad row failed only its request
    joinable = [b for b in batches if len(b) < size]  # bigger ones run alone
    if all((np.array(b) >= 0).all() for b in batches) and len(joinable) > 1:
        assert len(model.calls) < len(requests)  # and they did share runtime calls


def test_a_lone_request_does_not_wait_for_the_latency_bound() -> None:
    model = RowModel()
    plane, entry = entry_of(model)
    batcher = Batcher(plane, BatchSettings(32, 5.0), lambda: 1)

    async def once() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await batcher.infer(entry, request([[1, 2, 3]]))
        return loop.time() - began

    assert asyncio.run(once()) < 1.0  # 5 s if it had waited for the bound
    assert model.calls == [1]


def test_the_latency_bound_closes_a_batch_others_never_join() -> None:
    model = RowModel()
    plane, entry = entry_of(model)
    batcher = Batcher(plane, BatchSettings(32, 0.05), lambda: 10)  # 9 others "in flight"

    async def once() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await batcher.infer(entry, request([[1, 2, 3]]))
        return loop.time() - began

    assert asyncio.run(once()) >= 0.045
    assert model.calls == [1]


def test_the_size_bound_closes_a_batch_at_once() -> None:
    model = RowModel()
    plane, entry = entry_of(model)
    batcher = Batcher(plane, BatchSettings(4, 5.0), lambda: 100)
    requests = [request([[i, 1, 1], [i, 2, 2]]) for i in range(4)]
    got = asyncio.run(run_concurrently(batcher, entry, requests))
    assert model.calls == [4, 4] and len(got) == 4


def test_layouts_and_parameters_keep_requests_apart() -> None:
    _, entry = entry_of(RowModel())
    plain = batch_key(entry, request([[1, 2, 3]]))
    assert plain is not None and plain[1] == 1
    wider = batch_key(entry, request([[1, 2, 3, 4]]))
    assert wider is not None and wider[0] != plain[0]
    with_params = request([[1, 2, 3]])
    with_params.parameters = {"custom": 1}
    assert batch_key(entry, with_params) is None
    scalar = InferenceRequest([Tensor("x", np.float64(1.0).reshape(()), "FP64")])
    assert batch_key(entry, scalar) is None


def test_an_aggregate_output_is_not_split() -> None:
    outputs = [Tensor("mean", np.array([1.0]), "FP64")]
    assert split_outputs(outputs, [2, 3]) is None
    parts = split_outputs([Tensor("y", np.arange(5), "INT64")], [2, 3])
    assert parts is not None and [p[0].data.tolist() for p in parts] == [[0, 1], [2, 3, 4]]


@pytest.mark.parametrize(("size", "latency"), [(1, 0.01), (5000, 0.01), (8, 0), (8, 11)])
def test_bad_batch_settings_are_refused(size: int, latency: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        BatchSettings(size, latency)


class SlowThreadModel(ThreadModel):
    def predict(self, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> list[Tensor]:
        time.sleep(0.1)
        return super().predict(inputs, outputs)


def test_requests_arriving_while_a_threaded_batch_runs_share_the_next_call() -> None:
    model = SlowThreadModel()
    plane, entry = entry_of(model)
    inflight = [1]

    async def run() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(plane, BatchSettings(32, 5.0), lambda: inflight[0], pool)
            first = asyncio.create_task(batcher.infer(entry, request([[1, 1, 1]])))
            await asyncio.sleep(0.03)  # the first runs alone, in the thread
            inflight[0] = 4
            rest = [batcher.infer(entry, request([[i, 2, 2]])) for i in range(3)]
            return [outcome(r) for r in await asyncio.gather(first, *rest)]

    got = asyncio.run(run())
    assert len(got) == 4 and model.calls == [1, 3]  # not three calls of one behind it


def test_an_unexpected_failure_of_a_batch_reaches_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plane, entry = entry_of(RowModel())

    def broken(*args: Any) -> Any:
        raise MemoryError("no room to answer")

    monkeypatch.setattr(plane, "respond", broken)
    batcher = Batcher(plane, BatchSettings(8, 5.0), lambda: 3)

    async def run() -> list[Any]:
        calls = [batcher.infer(entry, request([[i, 1, 1]])) for i in range(3)]
        return list(await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 2))

    got = asyncio.run(run())  # none left waiting: wait_for would time out
    assert [type(r).__name__ for r in got] == ["MemoryError"] * 3
