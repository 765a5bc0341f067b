"""Sliding window bookkeeping and decoding of the samples wire format."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube_serving.drift.compiled import compile_profile
from mlkube_serving.drift.errors import PayloadError
from mlkube_serving.drift.ingest import PayloadDecoder
from mlkube_serving.drift.profile import build_profile
from mlkube_serving.drift.window import SlidingWindow


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 30),
    batches=st.lists(st.integers(0, 45), min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
)
def test_window_counts_equal_a_recount_of_the_last_rows(
    size: int, batches: list[int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    window = SlidingWindow(size, columns=3, stride=5)
    seen = np.zeros((0, 3), dtype=np.int32)
    for k in batches:
        codes = rng.integers(0, 5, size=(k, 3)).astype(np.int32)
        window.append(codes)
        seen = np.concatenate([seen, codes])
        last = seen[-size:]
        expected = np.stack([np.bincount(last[:, j], minlength=5) for j in range(3)])
        assert window.slot_counts().tolist() == expected.tolist()
        assert window.filled == min(size, len(seen))


@pytest.fixture(scope="module")
def small_profile() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    n = 2000
    frame = {
        "age": rng.normal(40, 10, n),
        "city": rng.choice(np.array(["berlin", "paris", "rome"], dtype=object), n),
        "code": rng.choice(np.array([1, 2, 3]), n),
        "pred": rng.random(n),
    }
    return build_profile(
        frame, window_size=100, categorical=["code"], prediction_column="pred", bootstrap_windows=50
    )


def decode(profile: dict[str, Any], payload: object) -> list[list[int]]:
    result: list[list[int]] = PayloadDecoder(compile_profile(profile)).decode(payload).tolist()
    return result


def slots(profile: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Named slot codes of every tracked column (see compiled.py)."""
    compiled = compile_profile(profile)
    out = {}
    for c in compiled.columns:
        out[c.name] = {"extra1": c.size, "extra2": c.size + 1, "null": c.size + 2}
    return out


def test_named_columns_map_by_name_and_ignore_unknown(small_profile: dict[str, Any]) -> None:
    s = slots(small_profile)
    rows = decode(
        small_profile,
        {"model": "m", "columns": ["extra", "city", "age"], "rows": [[1, "paris", 40.0]]},
    )
    compiled = compile_profile(small_profile)
    city = compiled.columns[1].lookup
    assert city is not None
    assert rows[0][1] == city["paris"]
    assert 0 <= rows[0][0] < s["age"]["extra1"]  # an in-range cell
    assert rows[0][2] == s["code"]["null"]  # missing from the payload: null
    assert rows[0][3] == s["pred"]["null"]  # no predictions sent


def test_positional_rows_follow_the_profile_columns(small_profile: dict[str, Any]) -> None:
    s = slots(small_profile)
    rows = decode(
        small_profile,
        {
            "columns": None,
            "rows": [[1e9, "lisbon", 3.0], [None, None, "2"]],
            "predictions": [[0.5], 0.1],
        },
    )
    assert rows[0][0] == s["age"]["extra2"]  # above the baseline max: out of range
    assert rows[0][1] == s["city"]["extra2"]  # never seen in training: unseen
    assert rows[1][0] == s["age"]["null"] and rows[1][1] == s["city"]["null"]
    code = compile_profile(small_profile).columns[2].lookup
    assert code is not None
    assert (rows[0][2], rows[1][2]) == (code["3"], code["2"])  # 3.0 and "2" are known codes
    assert rows[0][3] < s["pred"]["extra1"] and rows[1][3] < s["pred"]["extra1"]


def test_category_values_are_spelled_consistently(small_profile: dict[str, Any]) -> None:
    rows = decode(small_profile, {"columns": ["code"], "rows": [[2], [2.0], ["2"], [True]]})
    assert rows[0][2] == rows[1][2] == rows[2][2]
    assert rows[3][2] != rows[0][2]  # True is not the category 1 or 2


def test_garbage_in_numeric_columns_counts_as_null(small_profile: dict[str, Any]) -> None:
    s = slots(small_profile)
    rows = decode(small_profile, {"columns": ["age"], "rows": [["forty"], [[1, 2]], [40]]})
    assert rows[0][0] == s["age"]["null"] and rows[1][0] == s["age"]["null"]
    assert rows[2][0] < s["age"]["extra1"]


def test_unhashable_categories_count_as_null(small_profile: dict[str, Any]) -> None:
    s = slots(small_profile)
    rows = decode(small_profile, {"columns": ["city"], "rows": [[["x"]], ["rome"]]})
    assert rows[0][1] == s["city"]["null"] and rows[1][1] < s["city"]["extra1"]


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"rows": "nope"},
        {"rows": [[1, 2], [1]]},
        {"columns": ["age", "city"], "rows": [[1, "x", 3]]},
        {"columns": "age", "rows": [[1]]},
        {"rows": [5]},
        {"rows": [[1, "x", 2]], "predictions": [1, 2]},
    ],
)
def test_malformed_payloads_are_rejected(small_profile: dict[str, Any], payload: object) -> None:
    with pytest.raises(PayloadError):
        decode(small_profile, payload)


def test_empty_rows_decode_to_nothing(small_profile: dict[str, Any]) -> None:
    assert decode(small_profile, {"rows": []}) == []
