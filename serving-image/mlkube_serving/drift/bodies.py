"""Read the model server's version-2 batches: plain V2 requests and replies as they crossed
the wire (format in `mlkube_serving.drift_batch.bodies_batch`).

Why the sidecar parses them (issue 16): keeping a sample's request and reply bodies costs the
model server two list appends per sampled request, where copying its rows out cost two
`tobytes` calls and a dozen checks on the server's busiest thread. The JSON parsing this
moves here runs on the sidecar's own CPU budget: ~3 us a sample of 20 random FP64 features
(mostly orjson reading the floats), where a version-1 batch costs it next to nothing.

The framing (magic, header, the number of bodies) is checked as strictly as a version-1 batch: a
bad one is a `PayloadError` and the whole batch is refused. The bodies were checked by the
server's plain shortcut before it answered, so a sample whose request still does not read (not
JSON, no input, rows not `width` wide) is skipped and counted in `SampleBatch.invalid`, and the
rest of the batch is kept; a reply without one prediction per row leaves that sample's
predictions null.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import orjson

from mlkube.contract import DRIFT_SAMPLES_BODIES_MAGIC
from mlkube_serving.drift.batch import (
    SampleBatch,
    decode_batch,
    header_columns,
    natural,
    read_header,
)
from mlkube_serving.drift.errors import PayloadError


def decode_samples(body: bytes) -> SampleBatch:
    """A binary batch of either version (`DRIFT_SAMPLES_BATCH_TYPE`), validated."""
    if body.startswith(DRIFT_SAMPLES_BODIES_MAGIC):
        return decode_bodies(body)
    return decode_batch(body)


def decode_bodies(body: bytes) -> SampleBatch:
    """Validate a version-2 batch and parse its samples into one `SampleBatch`."""
    header, model, end = read_header(body, DRIFT_SAMPLES_BODIES_MAGIC, "bodies batch")
    samples, width = natural(header, "samples"), natural(header, "width")
    if width < 1:
        raise PayloadError("batch header 'width' must be at least 1")
    columns = header_columns(header, width)
    data = body[end:]
    items = data.split(b"\0") if data else []
    if len(items) != 2 * samples:
        raise PayloadError(
            f"batch body holds {len(items)} NUL-separated bodies; its header describes "
            f"{2 * samples} ({samples} samples, a request and a reply each)"
        )
    matrix, predictions, invalid = _parse(items[0::2], items[1::2], width)
    return SampleBatch(
        model, columns, matrix, _column(predictions), samples - invalid, invalid, owned=True
    )


def _parse(
    requests: list[bytes], replies: list[bytes], width: int
) -> tuple[np.ndarray[Any, Any], list[Any], int]:
    """(rows, one prediction or None per row, samples that did not read). The common batch
    (every request the same shape) takes C calls: one orjson parse of all requests as one
    array, one numpy conversion, each distinct reply parsed once (a classifier has a few)."""
    collecting = gc.isenabled()
    gc.disable()  # thousands of fresh dicts and lists, none in a cycle: no collection for them
    try:
        datas = [_data(p) for p in _loads_all(requests)]
    finally:
        if collecting:
            gc.enable()
    answers: dict[bytes, list[Any] | None] = {}
    if datas and None not in datas:
        try:
            values = np.array(datas, dtype=np.float64)
        except (ValueError, TypeError):  # ragged (rows differ) or not numbers: one by one
            values = None
        per = values[0].size if values is not None and values.ndim > 1 else 0
        if values is not None and per and per % width == 0:
            count = per // width
            predictions: list[Any] = []
            for reply in replies:
                answer = answers.get(reply, _UNSEEN)
                if answer is _UNSEEN:
                    answer = answers[reply] = _predictions(reply, count)
                predictions.extend([None] * count if answer is None else answer)
            return values.reshape(-1, width), predictions, 0
    blocks: list[np.ndarray[Any, Any]] = []
    predictions = []
    invalid = 0
    for data, reply in zip(datas, replies, strict=True):
        rows = _rows(data, width)
        if rows is None:
            invalid += 1
            continue
        blocks.append(rows)
        answer = _predictions(reply, rows.shape[0])
        predictions.extend([None] * rows.shape[0] if answer is None else answer)
    matrix = np.concatenate(blocks) if blocks else np.empty((0, width), np.float64)
    return matrix, predictions, invalid


_UNSEEN: Any = object()


def _loads_all(requests: list[bytes]) -> list[Any]:
    """Every request parsed (None where one is not JSON): one orjson call for the batch,
    one per request only when the joined parse fails or does not give one object each."""
    try:
        parsed = orjson.loads(b"[" + b",".join(requests) + b"]")
    except orjson.JSONDecodeError:
        parsed = None
    if (
        isinstance(parsed, list)
        and len(parsed) == len(requests)
        and all(type(p) is dict for p in parsed)  # one object each: none split across two
    ):
        return parsed
    return [_loads(r) for r in requests]  # a request was not one JSON value


def _loads(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _data(payload: Any) -> Any:
    """The request's one input's `data` (None if it has none)."""
    try:
        return payload["inputs"][0]["data"]
    except (KeyError, IndexError, TypeError):
        return None


def _rows(data: Any, width: int) -> np.ndarray[Any, Any] | None:
    """One request's values as a (rows, width) array; None if they do not read."""
    if data is None:
        return None
    try:
        rows = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if rows.size == 0 or rows.size % width:
        return None
    return rows.reshape(-1, width)


def _predictions(reply: bytes, count: int) -> list[Any] | None:
    """One prediction per row from the reply (its `predict` output, else the first)."""
    try:
        outputs = orjson.loads(reply)["outputs"]
        chosen = next((o for o in outputs if o.get("name") == "predict"), outputs[0])
        data = chosen["data"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(data, list) or len(data) != count:
        return None
    flat = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    return None if any(isinstance(v, list | dict) for v in flat) else flat


def _column(values: list[Any]) -> np.ndarray[Any, Any] | None:
    """Numbers as a numeric array (encoded in C); labels of other kinds, booleans and rows
    without a prediction (None: a null) as objects, as the JSON path reads them."""
    if not values or all(v is None for v in values):
        return None
    kinds = set(map(type, values))
    if kinds == {float}:
        return np.asarray(values, dtype=np.float64)
    if kinds == {int}:
        try:
            return np.asarray(values, dtype=np.int64)
        except OverflowError:  # past int64 (numpy alone would make inexact floats): objects
            pass
    return np.asarray(values, dtype=object)
