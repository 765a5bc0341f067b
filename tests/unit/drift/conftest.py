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
