"""Drift hook: sampling, bounded buffers with counted drops, the batch wire format it POSTs."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import pytest

from mlkube.contract import DRIFT_SAMPLES_BATCH_TYPE
from mlkube_serving import metrics
from mlkube_serving.dataplane import DataPlane, ModelEntry
from mlkube_serving.drift.batch import SampleBatch
from mlkube_serving.drift.bodies import decode_samples
from mlkube_serving.drift_hook import DriftHook
from mlkube_serving.drift_lane import HOLD_BYTES
from mlkube_serving.runtimes.base import ModelRuntime
from mlkube_serving.tensors import InferenceRequest, Tensor

URL = "http://127.0.0.1:9/"  # never contacted: these tests replace the sender
Posted = list[tuple[bytes, Any]]  # (request head, decoded body: SampleBatch or JSON)


def served(rows: int = 2, width: int = 3) -> tuple[list[Tensor], list[Tensor]]:
    features = np.arange(rows * width, dtype=np.float64).reshape(rows, width)
    labels = np.arange(rows, dtype=np.int64)
    return [Tensor("input-0", features, "FP64")], [Tensor("predict", labels, "INT64")]


def dropped(model: str, reason: str = "queue_full") -> float:
    return float(metrics.DRIFT_DROPPED.labels(model, reason)._value.get())


def capture(posted: Posted) -> Callable[[bytes, bytes], Any]:
    """A stand-in for the HTTP POST that decodes bodies the way the sidecar does."""

    async def post(body: bytes, head: bytes) -> bool:
        if DRIFT_SAMPLES_BATCH_TYPE.encode() in head:
            posted.append((head, decode_samples(body)))
        else:
            posted.append((head, orjson.loads(body)))
        return True

    return post


def batches(posted: Posted) -> list[SampleBatch]:
    assert all(isinstance(b, SampleBatch) for _, b in posted), posted
    return [b for _, b in posted]


class Echo:
    """A runtime that answers one label per row (the dataplane's contract, nothing more)."""

    feature_names = None
    n_features = 3

    def predict(self, inputs: list[Tensor], outputs: Any) -> list[Tensor]:
        return served(rows=len(inputs[0].data))[1]


def serve(hook: DriftHook, requests: int) -> None:
    plane = DataPlane(sink=hook)
    entry = ModelEntry("m", None, cast(ModelRuntime, Echo()), ready=True)
    for _ in range(requests):
        plane.infer_entry(entry, InferenceRequest(served()[0]))


def test_zero_rate_never_samples() -> None:
    hook = DriftHook(URL, 0.0)
    serve(hook, 10)
    assert hook.pending() == 0


def test_the_dataplane_flips_the_coin_per_request() -> None:
    """Unsampled requests never call the hook: the dataplane compares `coin()` with `rate`."""
    flips = iter([0.1, 0.9, 0.3, 0.7])
    hook = DriftHook(URL, 0.5, coin=lambda: next(flips))
    serve(hook, 4)
    assert hook.pending() == 2


def test_full_buffers_drop_count_and_do_not_block() -> None:
    """The lane holds `batch_rows` samples, then the buffers take what fits, then drops."""
    hook = DriftHook(URL, 1.0, batch_rows=2, max_buffers=1)
    before = dropped("drop-model")
    for _ in range(1000):
        hook.offer("drop-model", None, *served(rows=1))
    assert hook.pending() == 4
    hook.publish_drops()  # counted in an integer on the request path, published by the sender
    assert dropped("drop-model") - before == 996


def test_delivered_batch_follows_the_wire_format(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = DriftHook(URL, 1.0, max_rows=3)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    names = ["a", "b", "c"]  # the runtime's list: the same object for every request
    hook.offer("credit", names, *served(rows=2))
    hook.offer("credit", names, *served(rows=1))
    hook.offer("credit", names, *served(rows=5))  # capped at max_rows: the copying buffers
    asyncio.run(hook.flush())
    lane, copied = batches(posted)
    assert (lane.model, lane.columns, lane.samples, lane.count) == ("credit", names, 2, 3)
    assert lane.rows.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [0.0, 1.0, 2.0]]
    assert lane.predictions is not None and lane.predictions.tolist() == [0, 1, 0]
    assert (copied.model, copied.columns, copied.samples, copied.count) == ("credit", names, 1, 3)
    assert copied.rows.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
    assert copied.predictions is not None and copied.predictions.tolist() == [0, 1, 2]
    assert hook.pending() == 0


def test_unknown_columns_are_null_and_predict_output_is_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = DriftHook(URL, 1.0)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    inputs, labels = served(rows=1)
    proba = Tensor("predict_proba", np.array([[0.2, 0.8]]), "FP64")
    hook.offer("m", None, inputs, [proba, *labels])
    asyncio.run(hook.flush())
    [batch] = batches(posted)
    assert batch.columns is None
    assert batch.predictions is not None and batch.predictions.tolist() == [0]


def test_small_requests_are_copied_and_never_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane keeps a copy of a small request's row and prediction: nothing of the request
    outlives it, and writing its arrays afterwards does not change the sample."""
    hook = DriftHook(URL, 1.0)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    for _ in range(2):  # the first binds the lane's layout, the second takes the common path
        inputs, outputs = served(rows=1)
        hook.offer("m", None, inputs, outputs)
        held = weakref.ref(inputs[0].data)
        inputs[0].data[:] = -1.0
        outputs[0].data[:] = 9
        del inputs, outputs
        assert held() is None
    asyncio.run(hook.flush())
    [batch] = batches(posted)
    assert batch.rows.tolist() == [[0.0, 1.0, 2.0]] * 2
    assert batch.predictions is not None and batch.predictions.tolist() == [0, 0]


def test_big_requests_are_copied_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `HOLD_BYTES` a request's rows are copied (at most `max_rows`): the hook never pins
    a big request body until the next flush."""
    hook = DriftHook(URL, 1.0, max_rows=2)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    width = HOLD_BYTES // 8
    inputs, outputs = served(rows=2, width=width)
    hook.offer("m", None, inputs, outputs)
    held = weakref.ref(inputs[0].data)
    inputs[0].data[:] = -1.0  # written after the offer: the copy does not see it
    del inputs, outputs
    assert held() is None
    asyncio.run(hook.flush())
    [batch] = batches(posted)
    assert batch.rows.tolist() == np.arange(2 * width, dtype=np.float64).reshape(2, -1).tolist()


def test_layouts_are_never_mixed_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another model, other columns, another dtype or several inputs start another batch."""
    hook = DriftHook(URL, 1.0, max_buffers=5)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    names = ["a", "b", "c"]
    hook.offer("m", names, *served(rows=1))
    hook.offer("other", names, *served(rows=1))
    inputs, outputs = served(rows=1)
    hook.offer("m", names, [Tensor("input-0", inputs[0].data.astype(np.float32), "FP32")], outputs)
    columns = [Tensor(n, np.array([1.0, 2.0]) * i, "FP64") for i, n in enumerate("pqr")]
    hook.offer("m", names, columns, [Tensor("predict", np.array([0, 1]), "INT64")])
    hook.offer("m", names, *served(rows=1))  # single input again, after a several-inputs one
    asyncio.run(hook.flush())
    got = [(b.model, b.columns, b.rows.dtype.str, b.rows.tolist()) for b in batches(posted)]
    assert got == [
        # the lane: model "m" with `names`, FP64 rows
        ("m", names, "<f8", [[0.0, 1.0, 2.0]] * 2),
        # the buffers, in arrival order: another model, another dtype, several inputs (the
        # inputs' names)
        ("other", names, "<f8", [[0.0, 1.0, 2.0]]),
        ("m", names, "<f4", [[0.0, 1.0, 2.0]]),
        ("m", ["p", "q", "r"], "<f8", [[0.0, 1.0, 2.0], [0.0, 2.0, 4.0]]),
    ]


def test_text_features_take_the_json_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = DriftHook(URL, 1.0)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    rows = np.array([["a", 1.5], ["b", 2.5]], dtype=object)
    labels = np.array(["yes", "no"], dtype=object)
    text = [Tensor("input-0", rows, "BYTES")], [Tensor("predict", labels, "BYTES")]
    hook.offer("m", ["c", "x"], *text)
    hook.offer("m", ["c", "x"], *served(rows=1, width=2))
    asyncio.run(hook.flush())
    heads = [head for head, _ in posted]
    assert [DRIFT_SAMPLES_BATCH_TYPE.encode() in h for h in heads] == [True, False]
    assert b"application/json" in heads[1]
    assert posted[1][1] == {
        "model": "m",
        "columns": ["c", "x"],
        "rows": [["a", 1.5], ["b", 2.5]],
        "predictions": ["yes", "no"],
    }


def test_failed_post_counts_dropped_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = DriftHook(URL, 1.0)

    async def refuse(body: bytes, head: bytes) -> bool:
        return False

    monkeypatch.setattr(hook, "_post", refuse)
    before = dropped("post-model", "post_failed")
    hook.offer("post-model", None, *served())
    hook.offer("post-model", None, *served())
    asyncio.run(hook.flush())
    assert dropped("post-model", "post_failed") - before == 2
    assert hook.pending() == 0


def test_buffers_are_reused_after_a_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full buffers drop at once; once the sender has sent them, sampling resumes."""
    hook = DriftHook(URL, 1.0, batch_rows=2, max_buffers=2)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    for _ in range(10):
        hook.offer("reuse", None, *served(rows=1))
    assert hook.pending() == 6  # the lane's 2 and two buffers of 2
    asyncio.run(hook.flush())
    hook.offer("reuse", None, *served(rows=1))
    assert hook.pending() == 1
    assert [b.count for b in batches(posted)] == [2, 2, 2]


def test_bad_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="http"):
        DriftHook("ftp://sidecar", 1.0)


def test_batches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = DriftHook(URL, 1.0, batch_rows=4)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    for _ in range(10):
        hook.offer("m", None, *served(rows=1))
    asyncio.run(hook.flush())
    assert [b.count for b in batches(posted)] == [4, 4, 2]
    assert hook.pending() == 0


def test_a_huge_row_is_capped_by_the_buffer_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = DriftHook(URL, 1.0, buffer_bytes=3 * 8 * 1000)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    hook.offer("m", None, *served(rows=10, width=1000))
    asyncio.run(hook.flush())
    assert [b.count for b in batches(posted)] == [2]  # 2 rows + predictions fit in 24 kB


def test_what_sampling_keeps_is_bounded_by_the_lane_and_freed_by_the_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lane keeps two small byte strings per sample (~250 bytes for 20 FP64 features)
    until the sender joins them; once sent nothing is left (the slots are reused)."""
    hook = DriftHook(URL, 1.0, batch_rows=4096)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    inputs, outputs = served(rows=1, width=20)
    for _ in range(2000):  # binds the lane, fills CPython's free list of pairs
        hook.offer("m", None, inputs, outputs)
    asyncio.run(hook.flush())
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(2000):
            hook.offer("m", None, inputs, outputs)
        held, _ = tracemalloc.get_traced_memory()
        assert hook.pending() == 2000
        asyncio.run(hook.flush())
        posted.clear()
        left, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 2000 * 160 < held - start < 2000 * 400, held - start
    assert left - start < 16 * 1024, left - start


def test_offers_from_threads_are_all_accounted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inference threads offer while the loop flushes: every sample is sent or counted."""
    hook = DriftHook(URL, 1.0, batch_rows=64, max_buffers=3)
    sent: list[int] = []

    async def post(body: bytes, head: bytes) -> bool:
        sent.append(decode_samples(body).samples)
        return True

    monkeypatch.setattr(hook, "_post", post)
    before = dropped("threads")
    stop = threading.Event()

    def offer() -> None:
        for _ in range(3000):
            hook.offer("threads", None, *served(rows=1))
        stop.set()

    async def flusher() -> None:
        while not stop.is_set():
            await hook.flush()
            await asyncio.sleep(0)

    threads = [threading.Thread(target=offer) for _ in range(3)]
    for t in threads:
        t.start()
    asyncio.run(flusher())
    for t in threads:
        t.join()
    asyncio.run(hook.flush())
    assert sum(sent) + dropped("threads") - before == 9000
    assert hook.pending() == 0


def test_the_sender_posts_full_buffers_early_and_partial_ones_after_max_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every POST has a fixed cost: at low rates one per interval cost more than the samples.
    The sender sleeps until a buffer is full (woken at once) or `max_delay` has passed."""
    hook = DriftHook(URL, 1.0, batch_rows=8, max_delay=0.5)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))

    async def scenario() -> list[int]:
        hook.start()
        for _ in range(5):
            hook.offer("m", None, *served(rows=1))
        await asyncio.sleep(0.2)  # nothing is full, nothing is due
        counts = [len(posted)]
        for _ in range(4):  # fills the first buffer (8 rows) and starts the next
            hook.offer("m", None, *served(rows=1))
        await asyncio.sleep(0.1)
        counts.append(len(posted))
        await asyncio.sleep(0.6)  # past max_delay: the partial buffer goes too
        counts.append(len(posted))
        await hook.stop()
        return counts

    assert asyncio.run(scenario()) == [0, 1, 2]
    assert [b.count for b in batches(posted)] == [8, 1]


def test_each_layout_has_its_own_lane_up_to_max_lanes_then_the_buffers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lane holds one layout (model, columns, dtypes, width); a sample of another layout
    makes its own lane current, up to MAX_LANES lanes, then goes through the copying buffers:
    nothing lost or mixed."""
    hook = DriftHook(URL, 1.0)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    narrow, labels = served(rows=1)
    hook.offer("m", None, [Tensor("input-0", narrow[0].data.astype(np.float32), "FP32")], labels)
    hook.offer("m", None, *served(rows=1))  # FP64: another lane
    hook.offer("m", None, *served(rows=1, width=4))  # another width: another lane
    column = [Tensor("predict", np.array([[7]]), "INT64")]  # (rows, 1) predictions
    hook.offer("m", None, served(rows=1)[0], column)  # the FP64 width-3 lane again
    hook.offer("m", None, *served(rows=1, width=5))  # the fourth lane
    hook.offer("m", None, *served(rows=1, width=6))  # a fifth layout: the buffers
    asyncio.run(hook.flush())
    got = [(b.rows.dtype.str, b.rows.tolist(), b.predictions.tolist()) for b in batches(posted)
           if b.predictions is not None]  # fmt: skip
    assert got == [
        ("<f4", [[0.0, 1.0, 2.0]], [0]),
        ("<f8", [[0.0, 1.0, 2.0]] * 2, [0, 7]),
        ("<f8", [[0.0, 1.0, 2.0, 3.0]], [0]),
        ("<f8", [list(map(float, range(5)))], [0]),
        ("<f8", [list(map(float, range(6)))], [0]),
    ]
    assert sum(b.samples for b in batches(posted)) == 6


def test_predictions_that_are_not_one_per_row_are_sent_without_predictions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An output with several values for one row (shape (1, k)) cannot be a row's prediction:
    the row goes without it, as for any other such output; the lane's other samples keep
    theirs."""
    hook = DriftHook(URL, 1.0)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    hook.offer("m", None, *served(rows=1))
    wide = [Tensor("predict", np.array([[5, 6]]), "INT64")]
    hook.offer("m", None, served(rows=1)[0], wide)
    hook.offer("m", None, *served(rows=2))
    asyncio.run(hook.flush())
    got = [(b.samples, b.rows.tolist(), None if b.predictions is None else b.predictions.tolist())
           for b in batches(posted)]  # fmt: skip
    assert got == [
        (2, [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], [0, 0, 1]),
        (1, [[0.0, 1.0, 2.0]], None),
    ]


def test_views_of_bigger_arrays_are_copied_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small input that views a big array (a binary V2 input views the whole request body)
    is copied: holding it would pin the whole base until the flush."""
    hook = DriftHook(URL, 1.0)
    posted: Posted = []
    monkeypatch.setattr(hook, "_post", capture(posted))
    big = np.arange(100_000, dtype=np.float64)
    body = weakref.ref(big)
    labels = served(rows=1)[1]
    hook.offer("m", None, [Tensor("input-0", big[:3].reshape(1, 3), "FP64")], labels)
    del big
    assert body() is None
    asyncio.run(hook.flush())
    assert batches(posted)[0].rows.tolist() == [[0.0, 1.0, 2.0]]


REQUEST, REPLY = b'{"inputs": [{"data": [[1.0, 2.0, 3.0]]}]}', b'{"outputs": [{"data": [1]}]}'


def test_the_body_lane_keeps_bodies_until_full_then_wakes_the_sender() -> None:
    """`offer_plain`: the bodies themselves, up to the lane's capacity (then False: the
    caller takes the copying way); a full lane wakes the sender, a partial one waits for the
    seal, and each flush takes only what it held."""
    hook = DriftHook(URL, 1.0, batch_rows=3)
    posted: Posted = []
    hook._post = capture(posted)  # type: ignore[method-assign]
    names = ["a", "b", "c"]
    assert hook.offer_plain("m", names, 3, REQUEST, REPLY)
    assert hook.pending() == 1 and not hook._wake.is_set()
    asyncio.run(hook.flush(seal=False))
    assert posted == []  # partial: waits for the seal
    assert hook.offer_plain("m", names, 3, REQUEST, REPLY)
    assert hook.offer_plain("m", names, 3, REQUEST, REPLY)
    assert hook._wake.is_set()  # full
    assert not hook.offer_plain("m", names, 3, REQUEST, REPLY)  # no room: the caller copies
    assert not hook.offer_plain("m", names, 3, b" " * 5000, REPLY)  # too big to keep
    asyncio.run(hook.flush(seal=False))
    [batch] = batches(posted)
    assert (batch.model, batch.columns, batch.samples) == ("m", names, 3)
    assert batch.rows.tolist() == [[1.0, 2.0, 3.0]] * 3 and hook.pending() == 0


def test_body_lanes_follow_the_layout_up_to_max_lanes() -> None:
    """A model or column list switch binds another lane; a fifth layout is refused (the
    copying way takes it); a width that does not match the names is refused too."""
    hook = DriftHook(URL, 1.0)
    layouts = [(f"m{i}", [f"x{i}", "y", "z"]) for i in range(5)]
    for model, names in layouts[:4]:
        assert hook.offer_plain(model, names, 3, REQUEST, REPLY)
    assert not hook.offer_plain(*layouts[4], 3, REQUEST, REPLY)
    assert not hook.offer_plain("m0", ["only", "two"], 3, REQUEST, REPLY)
    assert hook.offer_plain(*layouts[0], 3, REQUEST, REPLY)  # back to the first: its lane
    assert len(hook._body_lanes) == 4 and hook.pending() == 5


def test_the_sender_keeps_freed_heap_and_a_spool_retries_soon(tmp_path: Path) -> None:
    """glibc takes the heap thresholds (once per process; elsewhere nothing is tuned and
    nothing raises); a spool hook retries a full ring after about the sidecar's poll, not the
    POST path's second."""
    import platform

    from mlkube_serving import drift_hook
    from mlkube_serving.drift_spool import RING_BACKOFF, SpoolHook

    glibc = platform.libc_ver()[0] == "glibc"
    assert drift_hook.keep_heap() is glibc and drift_hook.keep_heap() is glibc
    assert DriftHook(URL, 1.0)._backoff == 1.0
    hooks = [SpoolHook(URL, 1.0, str(tmp_path)), SpoolHook(URL, 1.0, str(tmp_path), backoff=2.0)]
    try:
        assert [h._backoff for h in hooks] == [RING_BACKOFF, 2.0] and RING_BACKOFF < 1.0
    finally:
        for hook in hooks:
            hook.ring.close()


def test_a_full_body_lane_always_fits_one_spool_record(tmp_path: Path) -> None:
    """The lane counts its bytes: big bodies fill it before `batch_rows` samples, and what one
    flush writes fits a record of the default ring (half of it), which takes it."""
    from mlkube_serving.drift_lane import BODIES_BUDGET, SAMPLE_BYTES
    from mlkube_serving.drift_ring import DEFAULT_CAPACITY
    from mlkube_serving.drift_spool import SpoolHook

    hook = SpoolHook(URL, 1.0, str(tmp_path))
    try:
        body = b'{"inputs": [{"data": [' + b"1.0," * (SAMPLE_BYTES // 8 - 10) + b"1.0]}]}"
        reply = b'{"outputs": [{"data": [' + b"1," * (SAMPLE_BYTES // 4 - 20) + b"1]}]}"
        assert SAMPLE_BYTES - 200 < len(body) + len(reply) <= SAMPLE_BYTES
        kept = 0
        while hook.offer_plain("m", None, 1, body, reply):
            kept += 1
        assert 0 < kept < 2048 and hook._wake.is_set()
        assert hook.bodies.held <= BODIES_BUDGET < DEFAULT_CAPACITY // 2
        assert asyncio.run(hook.flush()) and hook.pending() == 0  # the ring took the batch
    finally:
        hook.ring.close()
