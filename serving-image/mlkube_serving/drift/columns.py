"""Turn training data and live samples into typed columns the same way on both sides.

A category seen in training as the integer 3 must match the JSON value 3, 3.0 or "3" sent by
the model server later, so one function (`category_key`) spells every category; numeric
detection and null handling live here too so the profile and the sidecar cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mlkube_serving.drift.errors import ProfileError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
_NULL_TYPES = frozenset({"NAType", "NaTType"})


def category_key(value: object) -> str | None:
    """The canonical spelling of a categorical value; None for nulls."""
    if value is None or type(value).__name__ in _NULL_TYPES:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value)


def to_float(values: Iterable[object]) -> npt.NDArray[np.float64]:
    """Floats with NaN for nulls and for anything that is not a number (a quality issue)."""
    seq = list(values)
    try:
        return np.array(seq, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_float_or_nan(v) for v in seq], dtype=np.float64)


def _float_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def is_numeric(values: npt.NDArray[Any]) -> bool:
    """Numbers (not booleans) are numeric; object columns are numeric if every value is."""
    if values.dtype.kind in "iuf":
        return True
    if values.dtype.kind != "O":
        return False
    seen = False
    for v in values:
        if category_key(v) is None:
            continue
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.number):
            return False
        seen = True
    return seen


def columns_of(frame: object) -> dict[str, npt.NDArray[Any]]:
    """Columns of a pandas DataFrame or a mapping of name -> sequence, as 1-D arrays."""
    names = list(frame.columns) if hasattr(frame, "columns") else None
    if names is None:
        if not isinstance(frame, Mapping):
            raise ProfileError(f"expected a DataFrame or a mapping of columns, got {type(frame)}")
        names = list(frame)
    out: dict[str, npt.NDArray[Any]] = {}
    for name in names:
        col = frame[name]  # type: ignore[index]
        arr = col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)
        if arr.dtype.kind not in "iufb":
            arr = arr.astype(object)
        out[str(name)] = arr.reshape(-1)
    lengths = {len(a) for a in out.values()}
    if len(lengths) > 1:
        raise ProfileError(f"columns have different lengths: {sorted(lengths)}")
    return out


def read_frame(path: str | Path) -> Any:
    """Read training data (csv, parquet or jsonl, chosen by extension) into a DataFrame."""
    import pandas as pd  # lazy: only the profile CLI reads files, the sidecar never does

    p = Path(path)
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix == ".gz" else p.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz"):
            return pd.read_csv(p)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
            return pd.read_json(p, lines=True)
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read {p}: {exc}") from exc
    raise ProfileError(f"unsupported data format {suffix!r} (use .csv, .parquet or .jsonl)")
