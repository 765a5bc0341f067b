"""A reproducible 20-feature tabular workload for drift tests, benchmarks and the docs example.

Sixteen numeric features with deliberately awkward shapes (skewed, heavy-tailed, discrete,
bimodal, bounded, with nulls) and four categorical ones (skewed, small, long-tailed beyond the
top-K, with nulls), plus a probability-like prediction. `shift` moves chosen numeric features
by a multiple of their standard deviation; `new_categories` injects a never-seen category.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

NUMERIC_FEATURES = [f"x{i}" for i in range(16)]
CATEGORICAL_FEATURES = ["c0", "c1", "c2", "c3"]
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
PREDICTION = "score"
NEW_CATEGORY = "never-seen"
# Population standard deviations of the normal features, for "+k sigma" shifts.
NORMAL_STD = {"x0": 1.0, "x1": 2.0, "x2": 0.5, "x3": 10.0}

_C0 = (["a", "b", "c", "d", "e", "f", "g"], [0.3, 0.2, 0.15, 0.15, 0.1, 0.05, 0.05])
_C2_NAMES = [f"k{i:02d}" for i in range(40)]
_C2_WEIGHTS = 1.0 / np.arange(1, 41)


def make_columns(
    n: int,
    *,
    seed: int,
    shift: Mapping[str, float] | None = None,
    new_categories: Mapping[str, float] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """`n` rows as a mapping of column name -> array (categorical columns are object arrays)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, npt.NDArray[Any]] = {}
    for i, (name, std) in enumerate(NORMAL_STD.items()):
        cols[name] = rng.normal(10.0 * i, std, n)
    cols["x4"] = rng.lognormal(0.0, 0.5, n)
    cols["x5"] = 100.0 * rng.lognormal(1.0, 0.8, n)
    cols["x6"] = rng.uniform(0.0, 10.0, n)
    cols["x7"] = rng.uniform(-1.0, 1.0, n)
    cols["x8"] = rng.exponential(2.0, n)
    cols["x9"] = rng.standard_t(5, n)
    cols["x10"] = rng.poisson(3.0, n).astype(np.float64)
    cols["x11"] = rng.poisson(20.0, n).astype(np.float64)
    mix = rng.random(n) < 0.4
    cols["x12"] = np.where(mix, rng.normal(-2.0, 1.0, n), rng.normal(3.0, 0.5, n))
    x13 = rng.normal(5.0, 1.5, n)
    x13[rng.random(n) < 0.05] = np.nan
    cols["x13"] = x13
    cols["x14"] = rng.gamma(2.0, 2.0, n)
    cols["x15"] = rng.beta(2.0, 5.0, n)
    cols["c0"] = rng.choice(np.array(_C0[0], dtype=object), n, p=_C0[1])
    cols["c1"] = rng.choice(np.array(["low", "mid", "high"], dtype=object), n, p=[0.5, 0.3, 0.2])
    cols["c2"] = rng.choice(np.array(_C2_NAMES, dtype=object), n, p=_C2_WEIGHTS / _C2_WEIGHTS.sum())
    c3 = rng.choice(np.array(["yes", "no"], dtype=object), n, p=[0.7, 0.3])
    c3[rng.random(n) < 0.03] = None
    cols["c3"] = c3
    for name, sigmas in (shift or {}).items():
        cols[name] = cols[name] + sigmas * _std(name, cols[name])
    for name, fraction in (new_categories or {}).items():
        col = cols[name].copy()
        col[rng.random(n) < fraction] = NEW_CATEGORY
        cols[name] = col
    logit = 0.8 * (cols["x0"] - 0.0) - 0.3 * (cols["x1"] - 10.0) + 0.5 * (cols["c1"] == "high")
    cols[PREDICTION] = 1.0 / (1.0 + np.exp(-logit))
    return cols


def _std(name: str, values: npt.NDArray[np.float64]) -> float:
    return NORMAL_STD.get(name) or float(np.nanstd(values))


def to_payloads(
    cols: Mapping[str, npt.NDArray[Any]], batch: int, *, model: str = "synthetic"
) -> list[dict[str, Any]]:
    """Wire-format payloads of `batch` rows each (named columns, predictions included)."""
    n = len(cols[FEATURES[0]])
    table = np.empty((n, len(FEATURES)), dtype=object)
    for j, name in enumerate(FEATURES):
        # Python scalars (orjson does not take numpy scalars); NaN goes on the wire as null.
        table[:, j] = [None if v != v else v for v in cols[name].tolist()]
    rows = table.tolist()
    preds = cols[PREDICTION].tolist()
    return [
        {
            "model": model,
            "columns": FEATURES,
            "rows": rows[i : i + batch],
            "predictions": preds[i : i + batch],
        }
        for i in range(0, n, batch)
    ]
