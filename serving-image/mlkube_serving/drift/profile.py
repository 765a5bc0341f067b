"""The baseline profile: what "no drift" looks like, computed once from the training data.

The sidecar never sees training data, only this compact JSON document (formatVersion 1, every
field documented in docs/drift.md): per feature its type, counts, summary statistics, 101
quantiles, the frozen cells and PSI bins with reference proportions, top-K categories, and a
threshold per method calibrated on bootstrap windows of the configured window size.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from mlkube import contract
from mlkube_serving.drift import methods
from mlkube_serving.drift.calibrate import calibrate_thresholds
from mlkube_serving.drift.columns import (
    CATEGORICAL,
    NUMERIC,
    category_key,
    columns_of,
    is_numeric,
    to_float,
)
from mlkube_serving.drift.errors import ProfileError

FORMAT_VERSION = contract.DRIFT_PROFILE_FORMAT_VERSION
KIND = "DriftProfile"
QUANTILES = 101
DEFAULT_PSI_BINS = 10
DEFAULT_BOOTSTRAP_WINDOWS = 2000
DEFAULT_PERCENTILE = 99.5
MAX_OTHER_CATEGORIES = 1000
# Windows this small are judged by KS: W1 and PSI are too noisy on a few dozen samples.
SMALL_WINDOW = 100


def build_profile(
    frame: object,
    *,
    window_size: int,
    prediction_column: str | None = None,
    categorical: Iterable[str] | None = None,
    top_k: int = 20,
    seed: int = 0,
    model: str | None = None,
    importance: Mapping[str, float] | None = None,
    numeric_method: str | None = None,
    psi_bins: int = DEFAULT_PSI_BINS,
    bootstrap_windows: int = DEFAULT_BOOTSTRAP_WINDOWS,
    percentile: float = DEFAULT_PERCENTILE,
) -> dict[str, Any]:
    """Profile every column of `frame` (a DataFrame or a mapping of columns)."""
    if window_size < 1 or top_k < 1 or not 2 <= psi_bins <= 100:
        raise ProfileError("window_size and top_k must be >= 1, psi_bins in [2, 100]")
    numeric_method = numeric_method or (methods.KS if window_size < SMALL_WINDOW else "wasserstein")
    if numeric_method not in methods.NUMERIC_METHODS:
        raise ProfileError(f"unknown numeric method {numeric_method!r}")
    columns = columns_of(frame)
    forced = set(categorical or ())
    unknown = (forced | set(importance or {})) - set(columns)
    if prediction_column is not None and prediction_column not in columns:
        unknown.add(prediction_column)
    if unknown:
        raise ProfileError(f"unknown columns: {sorted(unknown)}")
    specs: dict[str, dict[str, Any]] = {}
    skipped = []
    for name, values in columns.items():
        kind = CATEGORICAL if name in forced or not is_numeric(values) else NUMERIC
        spec = (
            _profile_categorical(name, values, top_k)
            if kind == CATEGORICAL
            else _profile_numeric(name, values, psi_bins)
        )
        if spec is None:
            skipped.append(name)
            continue
        spec["method"] = numeric_method if kind == NUMERIC else methods.JENSEN_SHANNON
        spec["importance"] = None if importance is None else importance.get(name)
        specs[name] = spec
    prediction = specs.pop(prediction_column, None) if prediction_column else None
    if prediction_column and prediction is None:
        raise ProfileError(f"prediction column {prediction_column!r} has no values")
    if not specs:
        raise ProfileError("no usable feature columns")
    profile: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "kind": KIND,
        "model": model,
        "rows": len(next(iter(columns.values()))),
        "windowSize": window_size,
        "topK": top_k,
        "epsilon": methods.DEFAULT_EPSILON,
        "datasetDriftShare": methods.DATASET_DRIFT_SHARE,
        "calibration": {
            "bootstrapWindows": bootstrap_windows,
            "percentile": percentile,
            "seed": seed,
            "floors": {**methods.FLOORS, methods.KS: methods.ks_floor(window_size)},
        },
        "columns": [n for n in columns if n != prediction_column],
        "features": list(specs.values()),
        "prediction": prediction,
        "skippedColumns": skipped,
    }
    calibrate_thresholds(profile, columns, prediction_column=prediction_column)
    return profile


def _rounded(values: Iterable[float]) -> list[float]:
    """Proportions to 6 significant digits: a smaller file, far below sampling noise."""
    return [float(f"{v:.6g}") for v in values]


def _profile_numeric(name: str, values: npt.NDArray[Any], psi_bins: int) -> dict[str, Any] | None:
    x = to_float(values)
    finite = x[np.isfinite(x)]  # infinities count as nulls: they have no place on a quantile grid
    if finite.size == 0:
        return None
    quantiles = np.quantile(finite, np.linspace(0.0, 1.0, QUANTILES))
    cell_edges = np.unique(quantiles[1:-1])
    cells = np.bincount(
        np.searchsorted(cell_edges, finite, side="right"), minlength=len(cell_edges) + 1
    )
    picks = np.rint(np.arange(1, psi_bins) * (QUANTILES - 1) / psi_bins).astype(int)
    bin_edges = np.unique(quantiles[picks])
    cell_props = _rounded(cells / finite.size)
    lo, hi = float(finite.min()), float(finite.max())
    full = np.concatenate([[lo], cell_edges, [hi]])
    ref = np.asarray(cell_props) / sum(cell_props)
    bin_props = ref @ methods.bin_matrix(cell_edges, bin_edges)
    return {
        "name": name,
        "type": NUMERIC,
        "count": int(finite.size),
        "nulls": int(x.size - finite.size),
        "min": lo,
        "max": hi,
        "mean": float(finite.mean()),
        "std": float(finite.std()),
        "quantiles": [float(q) for q in quantiles],
        "cells": {"edges": [float(e) for e in cell_edges], "proportions": cell_props},
        "bins": {"edges": [float(e) for e in bin_edges], "proportions": _rounded(bin_props)},
        "scale": methods.histogram_std(full, ref) or 1.0,
    }


def _profile_categorical(name: str, values: npt.NDArray[Any], top_k: int) -> dict[str, Any] | None:
    keys = [category_key(v) for v in values]
    counts = Counter(k for k in keys if k is not None)
    total = sum(counts.values())
    if total == 0:
        return None
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top, rest = ordered[:top_k], ordered[top_k:]
    other = sum(c for _, c in rest)
    return {
        "name": name,
        "type": CATEGORICAL,
        "count": total,
        "nulls": len(keys) - total,
        "distinct": len(counts),
        "categories": [k for k, _ in top],
        "proportions": _rounded([c / total for _, c in top] + [other / total]),
        "otherCategories": sorted(k for k, _ in rest[:MAX_OTHER_CATEGORIES]),
        "otherComplete": len(rest) <= MAX_OTHER_CATEGORIES,
    }


def profile_to_bytes(profile: Mapping[str, Any]) -> bytes:
    """Indented JSON (profiles get committed and reviewed)."""
    return orjson.dumps(profile, option=orjson.OPT_INDENT_2) + b"\n"


def write_profile(profile: Mapping[str, Any], path: str | Path) -> None:
    """Write a profile atomically enough for a CLI: whole file at once."""
    Path(path).write_bytes(profile_to_bytes(profile))


def load_profile(source: str | Path | bytes) -> dict[str, Any]:
    """Read and check a profile from a path or raw bytes."""
    try:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
        profile = orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ProfileError(f"cannot read drift profile: {exc}") from exc
    validate_profile(profile)
    return profile  # type: ignore[no-any-return]


def validate_profile(profile: object) -> None:
    """Check the version and the invariants the engine relies on."""
    if not isinstance(profile, dict) or profile.get("formatVersion") != FORMAT_VERSION:
        version = profile.get("formatVersion") if isinstance(profile, dict) else None
        raise ProfileError(f"unsupported drift profile formatVersion {version!r}")
    try:
        specs = list(profile["features"])
        if profile.get("prediction") is not None:
            specs.append(profile["prediction"])
        for spec in specs:
            _validate_feature(spec)
        if int(profile["windowSize"]) < 1 or not specs:
            raise ProfileError("windowSize must be >= 1 and features non-empty")
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"malformed drift profile: {exc!r}") from exc


def _validate_feature(spec: Mapping[str, Any]) -> None:
    if spec["method"] not in spec["thresholds"]:
        raise ProfileError(f"feature {spec['name']!r}: no threshold for {spec['method']!r}")
    if spec["type"] == CATEGORICAL:
        if len(spec["proportions"]) != len(spec["categories"]) + 1:
            raise ProfileError(f"feature {spec['name']!r}: proportions need top-K + other")
        return
    if spec["type"] != NUMERIC:
        raise ProfileError(f"feature {spec['name']!r}: unknown type {spec['type']!r}")
    edges = spec["cells"]["edges"]
    if len(spec["cells"]["proportions"]) != len(edges) + 1 or edges != sorted(edges):
        raise ProfileError(
            f"feature {spec['name']!r}: cells need sorted edges and one more proportion"
        )
    if not set(spec["bins"]["edges"]) <= set(edges) or not math.isfinite(float(spec["scale"])):
        raise ProfileError(f"feature {spec['name']!r}: PSI bin edges must be cell edges")


def resolve_profile_path(path: str | Path) -> Path:
    """`path` itself, or the single `*.json` file in it when it is a directory.

    Serving pods download the baseline artifact into a directory (the storage initializer keeps
    the artifact's file name), so the sidecar is pointed at the directory, not a guessed name.
    """
    target = Path(path)
    if not target.is_dir():
        return target
    found = sorted(p for p in target.iterdir() if p.suffix == ".json" and p.is_file())
    if len(found) != 1:
        names = [p.name for p in found]
        raise ProfileError(f"{target} must hold exactly one .json drift profile, found {names}")
    return found[0]


def select_features(profile: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The profile restricted to the features in `names` (all of them when `names` is empty).

    The operator restricts its copy the same way (`mlkube.reconcile.drift_profile`), so both
    compute the same profile digest and the sidecar's summaries stay mergeable. Unknown names
    are ignored; a selection that keeps no feature is an error.
    """
    wanted = {n for n in names if n}
    if not wanted:
        return dict(profile)
    kept = [f for f in profile["features"] if f["name"] in wanted]
    if not kept:
        raise ProfileError(f"none of the features {sorted(wanted)} is in the drift profile")
    return {**profile, "features": kept}
