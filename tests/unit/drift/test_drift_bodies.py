"""Version-2 sample batches (the plain V2 shortcut's request and reply bodies), read by the
sidecar: framing checks, per-sample parsing and what reaches the window.

The hook writes the format and the sidecar reads it; these tests encode with the real hook
(`DriftHook.offer_plain`) and decode with the real sidecar.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from mlkube.contract import DRIFT_SAMPLES_BATCH_TYPE, DRIFT_SAMPLES_BODIES_MAGIC
from mlkube_serving.drift.bodies import decode_bodies, decode_samples
from mlkube_serving.drift.engine import DriftEngine
from mlkube_serving.drift.errors import PayloadError
from mlkube_serving.drift.sidecar import DriftApp
from mlkube_serving.drift.spool import SpoolReader
from mlkube_serving.drift.worker import DriftWorker
from mlkube_serving.drift_batch import bodies_batch
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_ring import BATCH_RECORD, RingWriter
from support.drift_app import call

NAMES = ["kind", "x0", "x1"]


def request(rows: Any) -> bytes:
    rows = np.asarray(rows, dtype=np.float64)
    return orjson.dumps({"inputs": [{"name": "input-0", "shape": list(rows.shape),
                                     "datatype": "FP64", "data": rows.tolist()}]})  # fmt: skip


def reply(labels: list[Any], name: str = "predict") -> bytes:
    return orjson.dumps({"model_name": "m", "outputs": [
        {"name": "proba", "datatype": "FP64", "shape": [len(labels), 2], "data": [0.5, 0.5]},
        {"name": name, "datatype": "INT64", "shape": [len(labels)], "data": labels},
    ]})  # fmt: skip


def hook_bodies(samples: list[tuple[bytes, bytes]], names: list[str] | None = NAMES) -> bytes:
    """The one body the real hook sends for these plain samples."""
    hook = DriftHook("http://127.0.0.1:9", 1.0)
    sent: list[bytes] = []

    async def post(body: bytes, head: bytes) -> bool:
        assert DRIFT_SAMPLES_BATCH_TYPE.encode() in head
        sent.append(body)
        return True

    hook._post = post  # type: ignore[method-assign]
    for body, answer in samples:
        assert hook.offer_plain("m", names, 3, body, answer)
    asyncio.run(hook.flush())
    [body] = sent
    return body


def test_bodies_window_exactly_like_the_same_rows_in_json(tabular_profile: dict[str, Any]) -> None:
    """Nested and flat data, one and several rows, NaN-free numbers, labels: the same slot
    codes as the JSON path's rows and predictions."""
    rng = np.random.default_rng(1)
    rows = np.column_stack([rng.integers(0, 6, 40), rng.normal(size=40), rng.uniform(-5, 15, 40)])
    labels = rng.integers(0, 3, 40).tolist()
    samples = []
    for start, count in [(0, 1), (1, 3), (4, 36)]:
        part = rows[start : start + count]
        body = request(part)
        if count == 3:  # flat data with the shape beside it, as V2 allows
            payload = orjson.loads(body)
            payload["inputs"][0]["data"] = part.reshape(-1).tolist()
            body = orjson.dumps(payload)
        samples.append((body, reply(labels[start : start + count])))
    batch = decode_samples(hook_bodies(samples))
    assert (batch.model, batch.columns, batch.samples, batch.invalid) == ("m", NAMES, 3, 0)
    assert np.array_equal(batch.rows, rows) and batch.predictions is not None
    assert batch.predictions.tolist() == labels and batch.predictions.dtype == np.int64
    via_bodies, via_json = DriftEngine(tabular_profile), DriftEngine(tabular_profile)
    via_bodies.ingest(batch)
    via_json.ingest({"model": "m", "columns": NAMES, "rows": rows.tolist(), "predictions": labels})
    assert via_bodies.ingested == via_json.ingested == 40
    assert np.array_equal(via_bodies.window.slot_counts(), via_json.window.slot_counts())


def test_a_sample_that_does_not_read_is_skipped_and_counted_the_rest_kept() -> None:
    good = (request([[1.0, 2.0, 3.0]]), reply([1]))
    samples = [
        good,
        (request([[1.0, 2.0]]), reply([0])),  # two values, not three
        (b"{not json", reply([0])),
        (orjson.dumps({"inputs": []}), reply([0])),
        (request([[4.0, 5.0, 6.0]]), b'{"outputs": "x"}'),  # rows kept, prediction null
        (request([[7.0, 8.0, 9.0]]), reply(["cat"], name="other")),  # no predict: the first
        good,
    ]
    batch = decode_bodies(hook_bodies(samples))
    assert (batch.samples, batch.invalid, batch.count) == (4, 3, 4)
    assert batch.rows.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 2, 3]]
    assert batch.predictions is not None and batch.predictions.dtype == object
    # the first output of the "other" reply has two values for one row: no prediction either
    assert batch.predictions.tolist() == [1, None, None, 1]


def test_string_labels_stay_labels() -> None:
    samples = [
        (request([[1.0, 2.0, 3.0]]), reply(["a"])),
        (request([[1.0, 2.0, 3.0]]), reply(["b"])),
    ]
    batch = decode_bodies(hook_bodies(samples, names=None))
    assert batch.columns is None and batch.predictions is not None
    assert batch.predictions.tolist() == ["a", "b"]


def frame(header: dict[str, Any], data: bytes) -> bytes:
    head = orjson.dumps(header)
    return DRIFT_SAMPLES_BODIES_MAGIC + struct.pack("<I", len(head)) + head + data


GOOD = {"model": "m", "columns": None, "samples": 1, "width": 3}
REQ, REP = request([[1.0, 2.0, 3.0]]), reply([1])
PAIR = REQ + b"\0" + REP


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"MKDS\x03" + b"\0" * 8, "bad magic"),
        (DRIFT_SAMPLES_BODIES_MAGIC + struct.pack("<I", 10**6) + b"{}", "does not fit"),
        (DRIFT_SAMPLES_BODIES_MAGIC + struct.pack("<I", 3) + b"{x}", "not JSON"),
        (frame({**GOOD, "model": None}, PAIR), "model"),
        (frame({**GOOD, "width": 0}, PAIR), "at least 1"),
        (frame({**GOOD, "samples": -1}, b""), "non-negative"),
        (frame({**GOOD, "columns": ["a"]}, PAIR), "columns"),
        (frame({**GOOD, "samples": 2}, PAIR), "NUL-separated"),
        (frame(GOOD, PAIR + b"\0"), "NUL-separated"),
        (frame(GOOD, REQ + REP), "NUL-separated"),
        (frame(GOOD, b""), "NUL-separated"),
    ],
)
def test_malformed_framing_is_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        decode_samples(body)


def test_a_well_framed_batch_matches_the_writer() -> None:
    assert frame(GOOD, PAIR) == bodies_batch("m", None, 3, [REQ, REP])
    assert frame({**GOOD, "samples": 0}, b"") == bodies_batch("m", None, 3, [])


def test_the_sidecar_takes_bodies_over_http_and_from_the_spool(
    tabular_profile: dict[str, Any], tmp_path: Path
) -> None:
    worker = DriftWorker(DriftEngine(tabular_profile), eval_interval=0.05)
    try:
        app = DriftApp(worker)
        body = hook_bodies([(REQ, REP), (b"[]", REP), (REQ, REP)])
        assert call(app, "POST", "/v1/samples", body, content_type=DRIFT_SAMPLES_BATCH_TYPE) == (
            202,
            {"accepted": True},
        )
        assert worker.received == 2 and worker.invalid_payloads == 1 and worker.dropped == 1
        assert call(app, "POST", "/v1/samples", body + b"\0",
                    content_type=DRIFT_SAMPLES_BATCH_TYPE)[0] == 400  # fmt: skip
        submitted: list[tuple[object, int, int]] = []
        invalid: list[int] = []
        writer = RingWriter(str(tmp_path))
        assert writer.put(BATCH_RECORD, 0, body, len(body), b"", 0)
        reader = SpoolReader(tmp_path, lambda *a: submitted.append(a), invalid.append)
        reader.poll()  # a record is taken one poll after it was published (drift_ring)
        assert reader.poll() == 2 and invalid == [1]
        [(batch, rows, held)] = submitted
        assert rows == 2 and held >= batch.rows.nbytes  # type: ignore[attr-defined]
        writer.close()
        reader.poll()
    finally:
        worker.stop()


def test_uniform_requests_take_the_fast_parse_and_read_the_same(
    tabular_profile: dict[str, Any],
) -> None:
    """Every request two rows, replies shared and not: the batch's one-call parse gives what
    the JSON path gives for the same rows and predictions."""
    rng = np.random.default_rng(3)
    rows = np.column_stack([rng.integers(0, 6, 60), rng.normal(size=60), rng.uniform(-5, 15, 60)])
    labels = rng.integers(0, 3, 60).tolist()
    shared = reply([1, 1])
    samples = []
    for i in range(0, 60, 2):
        answer = shared if labels[i : i + 2] == [1, 1] else reply(labels[i : i + 2])
        samples.append((request(rows[i : i + 2]), answer))
    batch = decode_samples(hook_bodies(samples))
    assert (batch.samples, batch.invalid, batch.count) == (30, 0, 60)
    assert np.array_equal(batch.rows, rows) and batch.predictions is not None
    assert batch.predictions.tolist() == labels
    via_bodies, via_json = DriftEngine(tabular_profile), DriftEngine(tabular_profile)
    via_bodies.ingest(batch)
    via_json.ingest({"model": "m", "columns": NAMES, "rows": rows.tolist(), "predictions": labels})
    assert np.array_equal(via_bodies.window.slot_counts(), via_json.window.slot_counts())


def test_requests_that_are_not_one_object_each_are_parsed_one_by_one() -> None:
    """Bodies whose join would still make as many values, split across the wrong requests
    (only a hand-made sender could send them): each is parsed alone, the bad ones skipped."""
    good = request([[1.0, 2.0, 3.0]])
    crafted = [(b"1,2", REP), (b"[3", REP), (b"4]", REP), (good, REP)]
    batch = decode_bodies(bodies_batch("m", None, 3, [x for pair in crafted for x in pair]))
    assert (batch.samples, batch.invalid) == (1, 3) and batch.rows.tolist() == [[1, 2, 3]]


def test_integer_labels_past_int64_stay_exact() -> None:
    """Labels past int64 (orjson writes up to uint64): objects, not floats that round them."""
    big = 2**63 + 1
    batch = decode_bodies(hook_bodies([(REQ, reply([big])), (REQ, reply([1]))], names=None))
    assert batch.predictions is not None and batch.predictions.dtype.kind == "O"
    assert batch.predictions.tolist() == [big, 1]
