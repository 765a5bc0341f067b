"""Drift statistics over frozen-bin counts, in pure Python.

The drift sidecar sends, per feature, its window's counts over the bins frozen in the baseline
profile. The operator merges the replicas of one deployment by adding those counts and
recomputes every score here, so the merged verdict is exact rather than an average of
per-replica scores. No numpy: the operator must stay light. The sidecar computes the same
numbers vectorised (`mlkube_serving.drift.methods`); tests hold the two to 1e-9.
The estimators are documented in docs/drift.md.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

WASSERSTEIN = "wasserstein"
KS = "ks"
PSI = "psi"
JENSEN_SHANNON = "jensenshannon"
NUMERIC = "numeric"
CATEGORICAL = "categorical"


def normalise(values: Sequence[float]) -> list[float]:
    """Proportions that sum to 1 (profiles round them; all-zero stays all-zero)."""
    total = float(sum(values))
    return [float(v) / total for v in values] if total > 0 else [0.0 for _ in values]


def wasserstein(full_edges: Sequence[float], ref: Sequence[float], win: Sequence[float]) -> float:
    """W1 between two histograms on the same cells, mass uniform within each cell.

    `full_edges` has one more entry than the proportions (baseline min, interior edges, max);
    the CDF difference is linear inside a cell, so its absolute integral is exact per cell.
    """
    total = 0.0
    cum_ref = 0.0
    cum_win = 0.0
    left = 0.0
    for j in range(len(ref)):
        cum_ref += ref[j]
        cum_win += win[j]
        right = cum_win - cum_ref
        width = full_edges[j + 1] - full_edges[j]
        total += width * _abs_integral(left, right)
        left = right
    return total


def _abs_integral(a: float, b: float) -> float:
    """Mean of |linear function| on [0, 1] going from a to b."""
    if a * b >= 0:
        return (abs(a) + abs(b)) / 2
    return (a * a + b * b) / (2 * (abs(a) + abs(b)))


def ks(ref: Sequence[float], win: Sequence[float]) -> float:
    """Largest CDF gap at the cell edges (the CDFs are linear in between, so it is the max)."""
    best = 0.0
    cum = 0.0
    for r, w in zip(ref, win, strict=True):
        cum += w - r
        best = max(best, abs(cum))
    return best


def psi(ref: Sequence[float], win: Sequence[float], epsilon: float) -> float:
    """Population stability index; proportions are clipped at epsilon, not renormalised."""
    total = 0.0
    for r, w in zip(ref, win, strict=True):
        rc = max(r, epsilon)
        wc = max(w, epsilon)
        total += (wc - rc) * math.log(wc / rc)
    return total


def jensen_shannon(ref: Sequence[float], win: Sequence[float]) -> float:
    """Jensen-Shannon distance (square root of the divergence), base 2, so it lies in [0, 1]."""
    div = 0.0
    for r, w in zip(ref, win, strict=True):
        m = (r + w) / 2
        if r > 0:
            div += 0.5 * r * math.log2(r / m)
        if w > 0:
            div += 0.5 * w * math.log2(w / m)
    return math.sqrt(max(div, 0.0))


def group_cells(cell_edges: Sequence[float], bin_edges: Sequence[float]) -> list[int]:
    """For each cell, the index of the coarser PSI bin holding it (bin edges are cell edges)."""
    groups = [0]
    for left in cell_edges:
        groups.append(bisect_right(bin_edges, left))
    return groups


def numeric_scores(
    feature: Mapping[str, Any], cells: Sequence[int], below: int, above: int, epsilon: float
) -> dict[str, float] | None:
    """Scores of one numeric feature from its window counts; None when the window is empty."""
    dist = [float(c) for c in cells]
    dist[0] += below
    dist[-1] += above
    n = sum(dist)
    if n <= 0:
        return None
    win = [d / n for d in dist]
    ref = normalise(feature["cells"]["proportions"])
    full = [float(feature["min"]), *feature["cells"]["edges"], float(feature["max"])]
    groups = group_cells(feature["cells"]["edges"], feature["bins"]["edges"])
    nbins = len(feature["bins"]["edges"]) + 1
    ref_bins = [0.0] * nbins
    win_bins = [0.0] * nbins
    for j, g in enumerate(groups):
        ref_bins[g] += ref[j]
        win_bins[g] += win[j]
    return {
        WASSERSTEIN: wasserstein(full, ref, win) / float(feature["scale"]),
        KS: ks(ref, win),
        PSI: psi(ref_bins, win_bins, epsilon),
    }


def categorical_scores(
    feature: Mapping[str, Any], counts: Sequence[int], other: int, unseen: int, epsilon: float
) -> dict[str, float] | None:
    """Scores of one categorical feature over top-K + other + unseen; None when empty."""
    dist = [float(c) for c in counts] + [float(other), float(unseen)]
    n = sum(dist)
    if n <= 0:
        return None
    win = [d / n for d in dist]
    ref = [*normalise(feature["proportions"]), 0.0]
    return {JENSEN_SHANNON: jensen_shannon(ref, win), PSI: psi(ref, win, epsilon)}
