"""Drift statistics between a baseline and windows, vectorised over many windows at once.

Every function takes the reference proportions `ref` (shape (C,)) and a batch of window
proportions `win` (shape (B, C)) over the same frozen bins and returns one score per window,
so the profile builder calibrates thresholds on a thousand bootstrap windows in one call and
the sidecar evaluates its single window with B = 1. Windows never carry raw values: numeric
features are binned into the profile's ~100 quantile cells, which is what lets replicas be
merged exactly (the pure-Python twin is `mlkube.reconcile.drift_stats`). docs/drift.md has the
formulas.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

WASSERSTEIN = "wasserstein"
KS = "ks"
PSI = "psi"
JENSEN_SHANNON = "jensenshannon"
NUMERIC_METHODS = (WASSERSTEIN, KS, PSI)
CATEGORICAL_METHODS = (JENSEN_SHANNON, PSI)

DEFAULT_EPSILON = 1e-4
# Floors under the calibrated thresholds: the usual defaults for these distances.
FLOORS = {WASSERSTEIN: 0.1, JENSEN_SHANNON: 0.1, PSI: 0.1}
# KS floor: asymptotic one-sample critical value at alpha = 0.005, divided by sqrt(window).
KS_ALPHA = 0.005
DATASET_DRIFT_SHARE = 0.5


def ks_floor(window_size: int) -> float:
    """Critical KS distance for a window of `window_size` against a large reference."""
    return float(np.sqrt(-np.log(KS_ALPHA / 2) / 2) / np.sqrt(window_size))


def to_proportions(counts: npt.NDArray[np.generic]) -> tuple[Floats, Floats]:
    """Row-normalise counts (B, C); empty rows become zeros. Returns (proportions, totals)."""
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=1)
    safe = np.where(n > 0, n, 1.0)
    return c / safe[:, None], n


def wasserstein(full_edges: Floats, ref: Floats, win: Floats) -> Floats:
    """W1 between histograms with mass uniform inside each cell (unnormalised).

    The CDF difference D is linear inside a cell, from D(left edge) to D(right edge), so the
    integral of |D| over a cell is its width times the mean of |D|, which has a closed form.
    """
    right = np.cumsum(win - ref, axis=1)
    left = np.concatenate([np.zeros((right.shape[0], 1)), right[:, :-1]], axis=1)
    a, b = np.abs(left), np.abs(right)
    same_sign = left * right >= 0
    denom = np.where(same_sign, 1.0, 2.0 * (a + b))
    mean_abs = np.where(same_sign, (a + b) / 2.0, (left**2 + right**2) / denom)
    result: Floats = mean_abs @ np.diff(full_edges)
    return result


def ks(ref: Floats, win: Floats) -> Floats:
    """Largest CDF gap at the cell edges (binned Kolmogorov-Smirnov distance)."""
    result: Floats = np.max(np.abs(np.cumsum(win - ref, axis=1)), axis=1)
    return result


def psi(ref: Floats, win: Floats, epsilon: float = DEFAULT_EPSILON) -> Floats:
    """Population stability index; proportions clipped at `epsilon`, not renormalised."""
    r = np.maximum(ref, epsilon)
    w = np.maximum(win, epsilon)
    result: Floats = np.sum((w - r) * np.log(w / r), axis=1)
    return result


def jensen_shannon(ref: Floats, win: Floats) -> Floats:
    """Jensen-Shannon distance in base 2 (square root of the divergence), in [0, 1]."""
    r = np.broadcast_to(ref, win.shape)
    m = (r + win) / 2.0
    safe_m = np.where(m > 0, m, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        kr = np.where(r > 0, r * np.log2(np.where(r > 0, r, 1.0) / safe_m), 0.0)
        kw = np.where(win > 0, win * np.log2(np.where(win > 0, win, 1.0) / safe_m), 0.0)
    div = 0.5 * (kr.sum(axis=1) + kw.sum(axis=1))
    result: Floats = np.sqrt(np.maximum(div, 0.0))
    return result


def histogram_std(full_edges: Floats, ref: Floats) -> float:
    """Std of the histogram with mass uniform in each cell: the W1 normaliser."""
    width = np.diff(full_edges)
    centre = (full_edges[:-1] + full_edges[1:]) / 2.0
    mean = float(ref @ centre)
    var = float(ref @ (centre**2 + width**2 / 12.0)) - mean**2
    return float(np.sqrt(var)) if var > 0 else 0.0


def bin_matrix(cell_edges: Floats, bin_edges: Floats) -> Floats:
    """0/1 matrix (cells, bins) folding the fine cells into the coarse PSI bins.

    PSI bin edges are a subset of the cell edges, so every cell lies in exactly one bin.
    """
    lefts = np.concatenate([[-np.inf], cell_edges])
    groups = np.searchsorted(bin_edges, lefts, side="right")
    matrix = np.zeros((len(lefts), len(bin_edges) + 1))
    matrix[np.arange(len(lefts)), groups] = 1.0
    return matrix


def numeric_scores(
    full_edges: Floats, ref: Floats, scale: float, bins: Floats, win: Floats, epsilon: float
) -> dict[str, Floats]:
    """All numeric statistics for a batch of windows over the profile's cells."""
    return {
        WASSERSTEIN: wasserstein(full_edges, ref, win) / scale,
        KS: ks(ref, win),
        PSI: psi(ref @ bins, win @ bins, epsilon),
    }


def categorical_scores(ref: Floats, win: Floats, epsilon: float) -> dict[str, Floats]:
    """All categorical statistics over top-K + other + unseen (`ref` has unseen = 0)."""
    return {JENSEN_SHANNON: jensen_shannon(ref, win), PSI: psi(ref, win, epsilon)}
