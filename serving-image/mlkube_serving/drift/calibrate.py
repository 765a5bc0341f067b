"""Per-feature thresholds calibrated on bootstrap windows drawn from the training data.

A fixed threshold (0.1) false-alarms on small windows and on lumpy features; so for every
feature and method we draw many windows of the configured size from the training rows (with
replacement), score them against the profile exactly as the sidecar will, and take a high
percentile of that null distribution, never going below the method's documented floor.
Bootstrapping rows (not columns) keeps the per-window null rate of each feature realistic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from mlkube_serving.drift.compiled import CompiledFeature, compile_profile

# Bound the (windows x window size) index block held at once (~16 MB of int64).
_MAX_BLOCK = 2_000_000


def calibrate_thresholds(
    profile: dict[str, Any],
    columns: Mapping[str, npt.NDArray[Any]],
    *,
    prediction_column: str | None = None,
) -> None:
    """Fill `thresholds` and `calibrated` (the raw null percentiles) of every tracked column."""
    cal = profile["calibration"]
    specs: list[dict[str, Any]] = list(profile["features"])
    if profile.get("prediction") is not None:
        specs.append(profile["prediction"])
    for spec in specs:
        spec.setdefault("thresholds", {})
    compiled = compile_profile(profile)
    window = int(profile["windowSize"])
    codes = {c.name: c.encode(columns[c.name]) for c in compiled.columns}
    null_scores: dict[str, dict[str, list[npt.NDArray[np.float64]]]] = {
        c.name: {} for c in compiled.columns
    }
    rng = np.random.default_rng(int(cal["seed"]))
    rows = int(profile["rows"])
    remaining = int(cal["bootstrapWindows"])
    block = max(1, _MAX_BLOCK // window)
    while remaining > 0:
        size = min(block, remaining)
        remaining -= size
        picks = rng.integers(0, rows, size=(size, window))
        for column in compiled.columns:
            scores = score_windows(column, codes[column.name][picks], compiled.epsilon)
            for method, values in scores.items():
                null_scores[column.name].setdefault(method, []).append(values)
    floors: Mapping[str, float] = cal["floors"]
    for spec, column in zip(specs, compiled.columns, strict=True):
        raw = {
            m: _percentile(np.concatenate(parts), float(cal["percentile"]))
            for m, parts in null_scores[column.name].items()
        }
        spec["calibrated"] = raw
        spec["thresholds"] = {m: max(float(floors[m]), v) for m, v in raw.items()}


def score_windows(
    column: CompiledFeature, window_codes: npt.NDArray[np.int32], epsilon: float
) -> dict[str, npt.NDArray[np.float64]]:
    """Every method's score for a block of windows given as slot codes (windows, rows)."""
    n, slots = window_codes.shape[0], column.slots
    flat = window_codes + (np.arange(n, dtype=np.int64) * slots)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n * slots).reshape(n, slots)
    return column.scores(counts, epsilon)


def _percentile(scores: npt.NDArray[np.float64], q: float) -> float:
    """The smallest threshold that at most (100 - q)% of the null windows reach.

    Statistics of discrete features come in lumps (a count in a tail cell, a KS step of 1/n);
    a plain percentile can land on a lump and let far more than (100 - q)% of windows alarm,
    so the threshold is placed just above the last score that must not alarm.
    """
    finite = np.sort(scores[np.isfinite(scores)])
    if finite.size == 0:
        return 0.0
    allowed = int(np.floor(finite.size * (100.0 - q) / 100.0))
    keep = finite[max(finite.size - allowed - 1, 0)]
    return float(keep * (1.0 + 1e-9) + 1e-12)
