"""The drift statistics: closed-form cases, bounds, and numpy == pure Python (operator twin)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.reconcile import drift_stats as pure
from mlkube_serving.drift import methods


def row(*values: float) -> np.ndarray:
    return np.array([values], dtype=np.float64)


def test_wasserstein_matches_closed_form_for_uniform_cells() -> None:
    # Reference U(0, 1) on two cells; the window puts all mass in [0, 0.5): W1 is 1/4.
    edges = np.array([0.0, 0.5, 1.0])
    ref = np.array([0.5, 0.5])
    assert methods.wasserstein(edges, ref, row(1.0, 0.0))[0] == pytest.approx(0.25)
    assert methods.ks(ref, row(1.0, 0.0))[0] == pytest.approx(0.5)
    assert methods.wasserstein(edges, ref, row(0.5, 0.5))[0] == 0.0


def test_wasserstein_of_a_crossing_cdf_integrates_both_signs() -> None:
    # Mass moves outwards: the CDF difference changes sign inside the middle cell.
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    ref = np.array([0.0, 1.0, 0.0])
    win = row(0.5, 0.0, 0.5)
    # Exact: D rises to 0.5 over [0,1], falls linearly 0.5 -> -0.5 over [1,2], back to 0.
    expected = 0.25 + 0.25 + 0.25
    assert methods.wasserstein(edges, ref, win)[0] == pytest.approx(expected)


def test_histogram_std_of_a_uniform_distribution() -> None:
    edges = np.linspace(0.0, 1.0, 11)
    assert methods.histogram_std(edges, np.full(10, 0.1)) == pytest.approx(math.sqrt(1 / 12))


def test_jensen_shannon_bounds() -> None:
    ref = np.array([0.5, 0.5, 0.0])
    assert methods.jensen_shannon(ref, row(0.5, 0.5, 0.0))[0] == pytest.approx(0.0)
    assert methods.jensen_shannon(np.array([1.0, 0.0]), row(0.0, 1.0))[0] == pytest.approx(1.0)


def test_psi_is_zero_on_equal_and_grows_with_shift() -> None:
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    small = methods.psi(ref, row(0.3, 0.25, 0.25, 0.2))[0]
    large = methods.psi(ref, row(0.7, 0.1, 0.1, 0.1))[0]
    assert methods.psi(ref, row(0.25, 0.25, 0.25, 0.25))[0] == 0.0
    assert 0 < small < large
    # An empty bin is clipped at epsilon, so the score stays finite.
    assert math.isfinite(methods.psi(ref, row(1.0, 0.0, 0.0, 0.0), 1e-4)[0])


def test_ks_floor_is_the_alpha_0005_critical_value() -> None:
    assert methods.ks_floor(1000) == pytest.approx(1.7308 / math.sqrt(1000), rel=1e-3)


def test_bin_matrix_folds_cells_into_coarse_bins() -> None:
    matrix = methods.bin_matrix(np.array([1.0, 2.0, 3.0]), np.array([2.0]))
    assert matrix.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    assert pure.group_cells([1.0, 2.0, 3.0], [2.0]) == [0, 0, 1, 1]


proportions = st.lists(st.integers(0, 50), min_size=2, max_size=30).filter(lambda c: sum(c) > 0)


@settings(max_examples=150, deadline=None)
@given(ref_counts=proportions, data=st.data())
def test_numpy_and_pure_python_agree(ref_counts: list[int], data: st.DataObject) -> None:
    """The operator recomputes merged scores in pure Python: it must match the sidecar."""
    n = len(ref_counts)
    win_counts = data.draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    if sum(win_counts) == 0:
        win_counts[0] = 1
    steps = data.draw(st.lists(st.floats(0.0, 10.0), min_size=n + 1, max_size=n + 1))
    edges = np.cumsum(steps)
    ref = np.array(pure.normalise(ref_counts))
    win = np.array([pure.normalise(win_counts)])
    assert methods.wasserstein(edges, ref, win)[0] == pytest.approx(
        pure.wasserstein(list(edges), list(ref), list(win[0])), abs=1e-9
    )
    assert methods.ks(ref, win)[0] == pytest.approx(pure.ks(list(ref), list(win[0])), abs=1e-12)
    assert methods.psi(ref, win, 1e-4)[0] == pytest.approx(
        pure.psi(list(ref), list(win[0]), 1e-4), abs=1e-9
    )
    assert methods.jensen_shannon(ref, win)[0] == pytest.approx(
        pure.jensen_shannon(list(ref), list(win[0])), abs=1e-9
    )
    assert 0.0 <= methods.jensen_shannon(ref, win)[0] <= 1.0 + 1e-12


def test_batches_score_each_window_independently() -> None:
    ref = np.array([0.2, 0.3, 0.5])
    wins = np.array([[0.2, 0.3, 0.5], [0.5, 0.3, 0.2], [0.0, 0.0, 1.0]])
    together = methods.jensen_shannon(ref, wins)
    alone = [methods.jensen_shannon(ref, wins[i : i + 1])[0] for i in range(3)]
    assert together.tolist() == pytest.approx(alone)
