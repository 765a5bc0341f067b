"""The drift hook's JSON lane: samples whose values cannot travel as raw numeric bytes.

Rows of strings or mixed objects (categorical features sent as text, string class labels) have
no fixed-size dtype for the batch format in `drift_batch`, so they keep the original JSON
format `{"model", "columns", "rows", "predictions"}`: each sample is a small copy of its rows,
grouped by layout into one body per group at flush time. This is the slow lane (a per-sample
tuple and JSON text); numeric models, the common case, never use it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from mlkube_serving.protocols.rows import dumps

Array = np.ndarray[Any, Any]
# (model, column names, feature rows, predictions): small copies, never views of a request body.
JsonSample = tuple[str, list[str] | None, Array, Array | None]


def json_sample(
    model: str, columns: list[str] | None, matrix: Array, predictions: Array | None, k: int
) -> JsonSample:
    """Copies of at most `k` rows: a queued sample must not keep a whole request body alive."""
    rows = np.array(matrix[:k])
    return model, columns, rows, None if predictions is None else np.array(predictions[:k])


def json_bodies(batch: list[JsonSample]) -> list[tuple[str, int, bytes]]:
    """One POST body per (model, columns, width, has predictions) group: (model, samples, bytes)."""
    groups: dict[tuple[Any, ...], list[tuple[Array, Array | None]]] = {}
    columns_of: dict[tuple[Any, ...], list[str] | None] = {}
    for model, columns, rows, predictions in batch:
        key = (model, tuple(columns or ()), columns is None, rows.shape[1:], predictions is None)
        groups.setdefault(key, []).append((rows, predictions))
        columns_of[key] = columns
    out = []
    for key, items in groups.items():
        body: dict[str, Any] = {
            "model": key[0],
            "columns": columns_of[key],
            "rows": np.concatenate([rows for rows, _ in items]),
            "predictions": None
            if key[4]
            else np.concatenate([p for _, p in items if p is not None]),
        }
        out.append((str(key[0]), len(items), dumps(body)))
    return out


class JsonLane:
    """A bounded deque of JSON-lane samples (append and popleft are atomic across threads)."""

    def __init__(self, max_samples: int, batch_samples: int = 256) -> None:
        self._pending: deque[JsonSample] = deque()
        self._max = max_samples
        self._batch = batch_samples

    def __len__(self) -> int:
        return len(self._pending)

    def offer(
        self,
        model: str,
        columns: list[str] | None,
        matrix: Array,
        predictions: Array | None,
        k: int,
    ) -> bool:
        """Keep a copy of the sample; False (the caller counts a drop) when full."""
        if len(self._pending) >= self._max:
            return False
        self._pending.append(json_sample(model, columns, matrix, predictions, k))
        return True

    def drain(self) -> Iterator[tuple[str, int, bytes]]:
        """Bodies (model, samples, bytes) for what was pending when called."""
        budget = len(self._pending)
        while budget > 0:
            chunk = [self._pending.popleft() for _ in range(min(budget, self._batch))]
            budget -= len(chunk)
            yield from json_bodies(chunk)
