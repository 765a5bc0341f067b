"""Decode the samples wire formats into slot codes, one column at a time.

The model server sends numeric samples as binary batches (`batch.SampleBatch`, decoded
column by column from the array views). Other senders, and the server for rows that are not
numeric, send JSON:
    {"model": str, "columns": [names] | null, "rows": [[v1, v2, ...], ...], "predictions": [...]}
`columns: null` means the rows follow the profile's training column order (`profile.columns`).
Columns the profile does not know are ignored, profiled features missing from the payload count
as nulls, predictions are optional (one scalar per row; a one-element list is unwrapped).
Rows are transposed with zip() and each column is encoded by numpy or a dict lookup, so the
cost is a few C-level passes per column rather than Python work per value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlkube_serving.drift.batch import SampleBatch
from mlkube_serving.drift.compiled import CompiledProfile
from mlkube_serving.drift.errors import PayloadError

Codes = npt.NDArray[np.int32]


class PayloadDecoder:
    """Maps payload columns onto the profile's tracked columns and encodes them."""

    def __init__(self, compiled: CompiledProfile) -> None:
        self.compiled = compiled
        self.features = compiled.features
        self._index = {f.name: i for i, f in enumerate(self.features)}
        order = list(compiled.profile.get("columns") or [f.name for f in self.features])
        self._positional = self._plan(order)
        self._null_codes = np.array([c.slots - 1 for c in compiled.columns], dtype=np.int32)
        self._plans: dict[tuple[str, ...], list[tuple[int, int]]] = {}

    def _plan(self, names: Sequence[object]) -> list[tuple[int, int]]:
        """(payload position, tracked column) pairs for the columns the profile knows."""
        return [
            (pos, self._index[name])
            for pos, name in enumerate(names)
            if isinstance(name, str) and name in self._index
        ]

    def _plan_for(self, columns: object) -> tuple[list[tuple[int, int]], int | None]:
        if columns is None:
            return self._positional, None
        if not isinstance(columns, list):
            raise PayloadError("'columns' must be a list of names or null")
        key = tuple(str(c) for c in columns)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(columns)
            if len(self._plans) < 64:  # senders use one or two layouts; do not grow unbounded
                self._plans[key] = plan
        return plan, len(columns)

    def decode(self, payload: object) -> Codes:
        """Slot codes (rows, tracked columns) for one payload (a JSON object or a batch)."""
        if isinstance(payload, SampleBatch):
            return self._decode_batch(payload)
        if not isinstance(payload, Mapping):
            raise PayloadError("payload must be a JSON object")
        rows = payload.get("rows")
        if not isinstance(rows, list):
            raise PayloadError("'rows' must be a list of rows")
        plan, width = self._plan_for(payload.get("columns"))
        k = len(rows)
        codes = np.empty((k, len(self.compiled.columns)), dtype=np.int32)
        codes[:] = self._null_codes
        if k == 0:
            return codes
        if not all(isinstance(row, list) for row in rows):
            raise PayloadError("every row must be a list of values")
        lengths = set(map(len, rows))
        if len(lengths) != 1 or (width is not None and lengths != {width}):
            raise PayloadError(f"rows must all have the same length (columns: {width})")
        values = list(zip(*rows, strict=True))
        for pos, col in plan:
            if pos < len(values):
                codes[:, col] = self.features[col].encode(values[pos])
        predictions = payload.get("predictions")
        if self.compiled.has_prediction and predictions is not None:
            codes[:, -1] = self._encode_predictions(predictions, k)
        return codes

    def _decode_batch(self, batch: SampleBatch) -> Codes:
        """The same codes as for JSON rows, from the batch's (validated) array views."""
        plan, _ = self._plan_for(batch.columns)
        k = batch.count
        codes = np.empty((k, len(self.compiled.columns)), dtype=np.int32)
        codes[:] = self._null_codes
        if k == 0:
            return codes
        for pos, col in plan:
            if pos < batch.rows.shape[1]:
                codes[:, col] = self.features[col].encode(batch.rows[:, pos])
        if self.compiled.has_prediction and batch.predictions is not None:
            codes[:, -1] = self.compiled.columns[-1].encode(batch.predictions)
        return codes

    def _encode_predictions(self, predictions: object, k: int) -> Codes:
        if not isinstance(predictions, list) or len(predictions) != k:
            raise PayloadError(f"'predictions' must be a list with one entry per row ({k})")
        column = self.compiled.columns[-1]
        flat: list[Any] = [_scalar(p) for p in predictions]
        return column.encode(flat)


def _scalar(value: object) -> object:
    """One prediction per row: unwrap a one-element list, anything else list-like is null."""
    if isinstance(value, list):
        return value[0] if len(value) == 1 and not isinstance(value[0], list) else None
    return value
