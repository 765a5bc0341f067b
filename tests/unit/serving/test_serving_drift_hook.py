"""Drift hook: sampling, bounded queue with counted drops, wire format of the POST body."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest

from mlkube_serving import metrics
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.tensors import Tensor

URL = "http://127.0.0.1:9/"  # never contacted: these tests replace the sender


def served(rows: int = 2, width: int = 3) -> tuple[list[Tensor], list[Tensor]]:
    features = np.arange(rows * width, dtype=np.float64).reshape(rows, width)
    labels = np.arange(rows, dtype=np.int64)
    return [Tensor("input-0", features, "FP64")], [Tensor("predict", labels, "INT64")]


def dropped(model: str) -> float:
    value = metrics.DRIFT_DROPPED.labels(model, "queue_full")._value.get()
    return float(value)


def capture(posted: list[dict[str, Any]]) -> Callable[[bytes], Any]:
    """A stand-in for the HTTP POST that records decoded bodies."""

    async def post(body: bytes) -> bool:
        posted.append(orjson.loads(body))
        return True

    return post


def test_zero_rate_never_samples() -> None:
    hook = DriftHook(URL, 0.0, queue_size=4)
    for _ in range(10):
        hook.offer("m", None, *served())
    assert hook.pending() == 0


def test_rate_is_a_coin_flip_per_request() -> None:
    flips = iter([0.1, 0.9, 0.3, 0.7])
    hook = DriftHook(URL, 0.5, queue_size=10, coin=lambda: next(flips))
    for _ in range(4):
        hook.offer("m", None, *served())
    assert hook.pending() == 2


def test_full_queue_drops_counts_and_does_not_block() -> None:
    hook = DriftHook(URL, 1.0, queue_size=2)
    before = dropped("drop-model")
    for _ in range(1000):
        hook.offer("drop-model", None, *served())
    assert hook.pending() == 2
    assert dropped("drop-model") - before == 998


def test_delivered_body_follows_the_wire_format(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = DriftHook(URL, 1.0, max_rows=3)
    posted: list[dict[str, Any]] = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    hook.offer("credit", ["a", "b", "c"], *served(rows=2))
    hook.offer("credit", ["a", "b", "c"], *served(rows=5))  # capped at max_rows
    asyncio.run(hook.flush())
    assert posted == [
        {
            "model": "credit",
            "columns": ["a", "b", "c"],
            "rows": [
                [0.0, 1.0, 2.0],
                [3.0, 4.0, 5.0],
                [0.0, 1.0, 2.0],
                [3.0, 4.0, 5.0],
                [6.0, 7.0, 8.0],
            ],
            "predictions": [0, 1, 0, 1, 2],
        }
    ]


def test_unknown_columns_are_null_and_predict_output_is_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = DriftHook(URL, 1.0)
    posted: list[dict[str, Any]] = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    inputs, labels = served(rows=1)
    proba = Tensor("predict_proba", np.array([[0.2, 0.8]]), "FP64")
    hook.offer("m", None, inputs, [proba, *labels])
    asyncio.run(hook.flush())
    assert posted[0]["columns"] is None
    assert posted[0]["predictions"] == [0]


def test_failed_post_counts_dropped_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = DriftHook(URL, 1.0)

    async def refuse(body: bytes) -> bool:
        return False

    monkeypatch.setattr(hook, "_post", refuse)
    before = metrics.DRIFT_DROPPED.labels("post-model", "post_failed")._value.get()
    hook.offer("post-model", None, *served())
    asyncio.run(hook.flush())
    after = metrics.DRIFT_DROPPED.labels("post-model", "post_failed")._value.get()
    assert after - before == 1


def test_bad_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="http"):
        DriftHook("ftp://sidecar", 1.0)


def test_batches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = DriftHook(URL, 1.0, batch_samples=4)
    posted: list[dict[str, Any]] = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    for _ in range(10):
        hook.offer("m", None, *served(rows=1))
    asyncio.run(hook.flush())
    assert [len(p["rows"]) for p in posted] == [4, 4, 2]
    assert hook.pending() == 0
