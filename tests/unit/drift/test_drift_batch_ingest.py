"""The model server's binary sample batches, read by the sidecar: validation and round trip.

The hook (model server) writes the format and the sidecar reads it; both change together, so
these tests encode with the real hook and decode with the real sidecar.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from mlkube.contract import DRIFT_SAMPLES_BATCH_MAGIC, DRIFT_SAMPLES_BATCH_TYPE
from mlkube_serving.drift.batch import decode_batch
from mlkube_serving.drift.engine import DriftEngine
from mlkube_serving.drift.errors import PayloadError
from mlkube_serving.drift.sidecar import DriftApp
from mlkube_serving.drift.worker import DriftWorker
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.tensors import Tensor
from support.drift_app import call, wait_for

BATCH = DRIFT_SAMPLES_BATCH_TYPE


def hook_bodies(offers: list[tuple[Any, Any, list[str] | None]]) -> list[bytes]:
    """Bodies the real hook POSTs for (rows, predictions, feature names) offers."""
    hook = DriftHook("http://127.0.0.1:9", 1.0)
    bodies: list[bytes] = []

    async def post(body: bytes, head: bytes) -> bool:
        assert BATCH.encode() in head
        bodies.append(body)
        return True

    hook._post = post  # type: ignore[method-assign]
    for rows, predictions, names in offers:
        rows = np.asarray(rows)
        inputs = [Tensor("input-0", rows, "FP64")]
        hook.offer("m", names, inputs, [Tensor("predict", np.asarray(predictions), "INT64")])
    asyncio.run(hook.flush())
    return bodies


def batch(header: dict[str, Any], data: bytes) -> bytes:
    head = orjson.dumps(header)
    return DRIFT_SAMPLES_BATCH_MAGIC + struct.pack("<I", len(head)) + head + data


GOOD = {"model": "m", "columns": None, "samples": 1, "count": 2, "width": 2, "rows": "<f8",
        "predictions": "<i8"}  # fmt: skip
GOOD_DATA = np.arange(4, dtype="<f8").tobytes() + np.arange(2, dtype="<i8").tobytes()


@pytest.fixture
def worker(tabular_profile: dict[str, Any]) -> Iterator[DriftWorker]:
    w = DriftWorker(DriftEngine(tabular_profile), eval_interval=0.05)
    yield w
    w.stop()


def test_a_well_formed_batch_is_viewed_without_copies() -> None:
    body = batch(GOOD, GOOD_DATA)
    decoded = decode_batch(body)
    assert decoded.rows.tolist() == [[0.0, 1.0], [2.0, 3.0]]
    assert decoded.predictions is not None and decoded.predictions.tolist() == [0, 1]
    assert decoded.rows.base is not None  # a view of the body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{}", "bad magic"),
        (b"MKDS\x02" + b"\0" * 8, "bad magic"),  # another version
        (DRIFT_SAMPLES_BATCH_MAGIC + struct.pack("<I", 10**6) + b"{}", "does not fit"),
        (DRIFT_SAMPLES_BATCH_MAGIC + struct.pack("<I", 3) + b"{x}", "not JSON"),
        (batch({**GOOD, "rows": "|O"}, GOOD_DATA), "dtype"),
        (batch({**GOOD, "rows": ">f8"}, GOOD_DATA), "dtype"),
        (batch({**GOOD, "predictions": "<f16"}, GOOD_DATA), "dtype"),
        (batch({**GOOD, "count": -1}, GOOD_DATA), "non-negative"),
        (batch({**GOOD, "count": True}, GOOD_DATA), "non-negative"),
        (batch({**GOOD, "width": 0, "count": 10**12}, b""), "at least 1"),
        (batch({**GOOD, "columns": ["a"]}, GOOD_DATA), "columns"),
        (batch({**GOOD, "columns": [1, 2]}, GOOD_DATA), "columns"),
        (batch({**GOOD, "model": 3}, GOOD_DATA), "model"),
        (batch(GOOD, GOOD_DATA[:-1]), "data bytes"),
        (batch(GOOD, GOOD_DATA + b"x"), "data bytes"),
        (batch({**GOOD, "count": 3}, GOOD_DATA), "data bytes"),
    ],
)
def test_malformed_batches_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_batch(body)


def test_the_sidecar_answers_400_with_the_reason(worker: DriftWorker) -> None:
    app = DriftApp(worker, max_body_bytes=1000)
    status, answer = call(app, "POST", "/v1/samples", batch(GOOD, GOOD_DATA[:-1]),
                          content_type=BATCH)  # fmt: skip
    assert status == 400 and "data bytes" in answer["error"]
    assert worker.invalid_payloads == 1 and worker.received == 0
    assert call(app, "POST", "/v1/samples", b"x" * 2000, content_type=BATCH)[0] == 413
    assert call(app, "POST", "/v1/samples", batch(GOOD, GOOD_DATA), content_type=BATCH) == (
        202,
        {"accepted": True},
    )
    assert worker.received == 2 and worker.queued_bytes >= len(batch(GOOD, GOOD_DATA))


def test_batches_window_exactly_like_the_same_rows_in_json(
    tabular_profile: dict[str, Any],
) -> None:
    """Same rows, same codes: numbers, integer-coded categories, predictions, out-of-order
    and unknown columns, NaN as null."""
    rng = np.random.default_rng(1)
    rows = np.column_stack([rng.integers(0, 6, 50), rng.normal(size=50), rng.uniform(-5, 15, 50),
                            rng.normal(size=50)])  # fmt: skip
    rows[3, 1] = np.nan
    labels = rng.integers(0, 3, 50)
    names = ["kind", "x0", "x1", "extra"]
    [body] = hook_bodies([(rows[:20], labels[:20], names), (rows[20:], labels[20:], names)])
    via_batch, via_json = DriftEngine(tabular_profile), DriftEngine(tabular_profile)
    via_batch.ingest(decode_batch(body))
    json_rows = [[None if v != v else v for v in row] for row in rows.tolist()]
    via_json.ingest({"model": "m", "columns": names, "rows": json_rows,
                     "predictions": labels.tolist()})  # fmt: skip
    assert via_batch.ingested == via_json.ingested == 50
    assert np.array_equal(via_batch.window.slot_counts(), via_json.window.slot_counts())


def test_hook_batches_reach_the_window_through_the_app(worker: DriftWorker) -> None:
    app = DriftApp(worker)
    rng = np.random.default_rng(2)
    offers = [(rng.normal(size=(1, 3)), [1], ["x0", "x1", "kind"]) for _ in range(300)]
    for body in hook_bodies(offers):
        assert call(app, "POST", "/v1/samples", body, content_type=BATCH)[0] == 202
    worker.start()
    wait_for(lambda: worker.summary["windowSamples"] == 200)
    assert worker.received == 300 and worker.dropped == 0
