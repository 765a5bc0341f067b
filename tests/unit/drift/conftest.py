"""Shared drift fixtures: one synthetic training set and its profile per test session."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from mlkube_serving.drift import synthetic
from mlkube_serving.drift.profile import build_profile, load_profile, profile_to_bytes

WINDOW = 1000
TRAIN_ROWS = 50_000


@pytest.fixture(scope="session")
def train_columns() -> dict[str, npt.NDArray[Any]]:
    return synthetic.make_columns(TRAIN_ROWS, seed=1)


@pytest.fixture(scope="session")
def profile(train_columns: dict[str, npt.NDArray[Any]]) -> dict[str, Any]:
    """The synthetic profile after a JSON round trip (what the sidecar actually loads)."""
    built = build_profile(
        train_columns,
        window_size=WINDOW,
        prediction_column=synthetic.PREDICTION,
        model="synthetic",
        seed=7,
    )
    return load_profile(profile_to_bytes(built))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tabular_profile() -> dict[str, Any]:
    """Two numeric features, one integer-coded categorical one and a class prediction (the
    binary batches' tests: rows of numbers as the model server sends them)."""
    rng = np.random.default_rng(0)
    n = 5000
    columns = {
        "x0": rng.normal(size=n),
        "x1": rng.uniform(0, 10, size=n),
        "kind": rng.integers(0, 4, size=n),
        "label": rng.integers(0, 2, size=n),
    }
    built = build_profile(columns, window_size=200, prediction_column="label",
                          categorical=["kind"], bootstrap_windows=20)  # fmt: skip
    return load_profile(profile_to_bytes(built))
