"""A profile turned into numpy arrays: how to encode values into slots and score slot counts.

Every tracked column (features, then the prediction) gets `slots` integer codes:
numeric   -> 0..C-1 quantile cells, C below the baseline min, C+1 above the max, C+2 null;
categorical -> 0..K-1 top-K categories, K other known, K+1 unseen, K+2 null.
Windows store only these codes and keep counts per slot, so evaluation costs O(slots), not
O(window), and the same counts go to the operator for an exact merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mlkube_serving.drift import methods
from mlkube_serving.drift.columns import CATEGORICAL, category_key, to_float

Codes = npt.NDArray[np.int32]
Floats = npt.NDArray[np.float64]
# Cache at most this many raw string values per categorical column (high-cardinality guard).
_CACHE_LIMIT = 10_000


class _CategoryCodes(dict[object, int]):
    """Value -> slot lookup; misses are spelled with `category_key` and cached if strings."""

    def __init__(self, feature: Mapping[str, Any]) -> None:
        top = list(feature["categories"])
        super().__init__({name: i for i, name in enumerate(top)})
        self.other_code = len(top)
        self.unseen_code = len(top) + 1
        self.null_code = len(top) + 2
        self.top = dict(self)
        self.others = frozenset(feature.get("otherCategories", ()))
        self.complete = bool(feature.get("otherComplete", True))
        self[None] = self.null_code

    def __missing__(self, value: object) -> int:
        key = category_key(value)
        if key is None:
            code = self.null_code
        elif key in self.top:
            code = self.top[key]
        elif key in self.others or not self.complete:
            code = self.other_code
        else:
            code = self.unseen_code
        # Only strings are cached: 1 == True == 1.0 as dict keys but spell differently.
        if isinstance(value, str) and len(self) < _CACHE_LIMIT:
            self[value] = code
        return code


@dataclass
class CompiledFeature:
    """One tracked column of a profile, ready for encoding and scoring."""

    spec: Mapping[str, Any]
    name: str
    kind: str
    method: str
    size: int  # C cells or K categories
    ref: Floats  # reference proportions over the distribution bins
    thresholds: dict[str, float]
    importance: float | None
    full_edges: Floats = field(default_factory=lambda: np.zeros(0))
    cell_edges: Floats = field(default_factory=lambda: np.zeros(0))
    bins: Floats = field(default_factory=lambda: np.zeros((0, 0)))
    scale: float = 1.0
    lo: float = 0.0
    hi: float = 0.0
    lookup: _CategoryCodes | None = None

    @property
    def slots(self) -> int:
        return self.size + 3

    def encode(self, values: Sequence[object] | npt.NDArray[Any]) -> Codes:
        """Slot codes for a column of raw values."""
        if self.lookup is not None:
            return self._encode_categories(values, self.lookup)
        # Numbers from a binary batch convert in C; JSON values go through to_float.
        x = values if isinstance(values, np.ndarray) and values.dtype.kind in "biuf" else None
        x = to_float(values) if x is None else x.astype(np.float64, copy=False)
        codes = np.searchsorted(self.cell_edges, x, side="right").astype(np.int32)
        codes[x < self.lo] = self.size
        codes[x > self.hi] = self.size + 1
        codes[np.isnan(x)] = self.size + 2
        return codes

    @staticmethod
    def _encode_categories(values: Iterable[object], lookup: _CategoryCodes) -> Codes:
        # tolist(): Python scalars, so a batch's 3.0 or True spells like the JSON value.
        seq = values.tolist() if isinstance(values, np.ndarray) else values
        seq = seq if isinstance(seq, list | tuple) else list(seq)
        try:
            return np.fromiter(map(lookup.__getitem__, seq), dtype=np.int32, count=len(seq))
        except TypeError:  # an unhashable value (list, dict): count it as null
            return np.array([_safe_code(lookup, v) for v in seq], dtype=np.int32)

    def distribution(self, slot_counts: npt.NDArray[np.int64]) -> tuple[Floats, Floats]:
        """Window proportions over the distribution bins from slot counts (B, slots)."""
        c = slot_counts.astype(np.float64)
        if self.lookup is not None:
            return methods.to_proportions(c[:, : self.size + 2])
        dist = c[:, : self.size].copy()
        dist[:, 0] += c[:, self.size]  # below the baseline range: clamp into the first cell
        dist[:, -1] += c[:, self.size + 1]
        return methods.to_proportions(dist)

    def scores(self, slot_counts: npt.NDArray[np.int64], epsilon: float) -> dict[str, Floats]:
        """Every method's score for a batch of windows (NaN where a window has no values)."""
        win, n = self.distribution(slot_counts)
        if self.lookup is not None:
            out = methods.categorical_scores(self.ref, win, epsilon)
        else:
            out = methods.numeric_scores(
                self.full_edges, self.ref, self.scale, self.bins, win, epsilon
            )
        return {m: np.where(n > 0, v, np.nan) for m, v in out.items()}


def _safe_code(lookup: _CategoryCodes, value: object) -> int:
    try:
        return lookup[value]
    except TypeError:
        return lookup.null_code


def _normalised(values: Sequence[float]) -> Floats:
    arr = np.asarray(values, dtype=np.float64)
    total = arr.sum()
    return arr / total if total > 0 else arr


def compile_feature(spec: Mapping[str, Any]) -> CompiledFeature:
    """Arrays for one feature (or prediction) entry of a profile."""
    common: dict[str, Any] = {
        "spec": spec,
        "name": str(spec["name"]),
        "kind": str(spec["type"]),
        "method": str(spec.get("method", "")),
        "thresholds": {k: float(v) for k, v in spec.get("thresholds", {}).items()},
        "importance": None if spec.get("importance") is None else float(spec["importance"]),
    }
    if spec["type"] == CATEGORICAL:
        ref = np.append(_normalised(spec["proportions"]), 0.0)  # unseen: 0 in the baseline
        return CompiledFeature(
            size=len(spec["categories"]), ref=ref, lookup=_CategoryCodes(spec), **common
        )
    cell_edges = np.asarray(spec["cells"]["edges"], dtype=np.float64)
    lo, hi = float(spec["min"]), float(spec["max"])
    return CompiledFeature(
        size=len(spec["cells"]["proportions"]),
        ref=_normalised(spec["cells"]["proportions"]),
        full_edges=np.concatenate([[lo], cell_edges, [hi]]),
        cell_edges=cell_edges,
        bins=methods.bin_matrix(cell_edges, np.asarray(spec["bins"]["edges"], dtype=np.float64)),
        scale=float(spec.get("scale") or 1.0),
        lo=lo,
        hi=hi,
        **common,
    )


@dataclass
class CompiledProfile:
    """All tracked columns: features first, then the prediction if the profile has one."""

    profile: Mapping[str, Any]
    columns: list[CompiledFeature]
    has_prediction: bool
    epsilon: float
    window_size: int

    @property
    def features(self) -> list[CompiledFeature]:
        return self.columns[:-1] if self.has_prediction else self.columns

    @property
    def max_slots(self) -> int:
        return max((c.slots for c in self.columns), default=1)


def compile_profile(profile: Mapping[str, Any]) -> CompiledProfile:
    """Compile a profile dict (as written by `build_profile`, thresholds optional)."""
    columns = [compile_feature(f) for f in profile["features"]]
    prediction = profile.get("prediction")
    if prediction is not None:
        columns.append(compile_feature(prediction))
    return CompiledProfile(
        profile=profile,
        columns=columns,
        has_prediction=prediction is not None,
        epsilon=float(profile.get("epsilon", methods.DEFAULT_EPSILON)),
        window_size=int(profile["windowSize"]),
    )
