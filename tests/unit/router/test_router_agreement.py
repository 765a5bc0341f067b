"""Mirror agreement: prediction extraction per protocol and tolerant comparison."""

from __future__ import annotations

import orjson
import pytest

from mlkube_serving.router.agreement import compare_responses, values_agree


def v2(*outputs: tuple[str, list[object]]) -> bytes:
    items = [{"name": n, "datatype": "FP32", "data": d} for n, d in outputs]
    return orjson.dumps({"model_name": "m", "outputs": items})


@pytest.mark.parametrize(
    ("live", "shadow", "agree"),
    [
        (v2(("label", [1, 0, 2])), v2(("label", [1, 0, 2])), True),
        (v2(("label", [1, 0, 2])), v2(("label", [1, 1, 2])), False),
        (v2(("p", [0.1, 0.9])), v2(("p", [0.1 + 1e-9, 0.9])), True),
        (v2(("p", [0.1, 0.9])), v2(("p", [0.11, 0.89])), False),
        (v2(("label", ["yes"]), ("p", [0.7])), v2(("p", [0.7]), ("label", ["yes"])), True),
        (v2(("label", ["yes"])), v2(("other", ["yes"])), False),
        (b'{"predictions": [[0.2, 0.8], [1, 0]]}', b'{"predictions": [[0.2, 0.8], [1, 0]]}', True),
        (b'{"predictions": ["cat"]}', b'{"predictions": ["dog"]}', False),
        (b'{"data": {"ndarray": [[1, 2]]}}', b'{"data": {"ndarray": [[1, 2]]}}', True),
        (b'{"data": {"tensor": {"values": [3]}}}', b'{"data": {"tensor": {"values": [4]}}}', False),
        (v2(("label", [1])), b'{"predictions": [1]}', False),
    ],
)
def test_compare_responses(live: bytes, shadow: bytes, agree: bool) -> None:
    assert compare_responses(live, shadow, 1e-6) is agree


@pytest.mark.parametrize(
    ("live", "shadow"),
    [
        (b"not json", v2(("p", [1]))),
        (b'{"error": "boom"}', b'{"error": "boom"}'),
        (b'{"outputs": [{"name": "p", "binary_data_size": 8}]}', v2(("p", [1]))),
        (b"[1, 2]", b"[1, 2]"),
    ],
)
def test_unknown_shapes_are_not_comparable(live: bytes, shadow: bytes) -> None:
    assert compare_responses(live, shadow, 1e-6) is None


def test_values_agree_rules() -> None:
    assert values_agree(1, 1.0000001, 1e-6)
    assert not values_agree(1, 2, 0.5), "ints are labels: no tolerance"
    assert not values_agree(True, 1, 1e-6), "bools are labels, not numbers"
    assert not values_agree([1, 2], [1, 2, 3], 1e-6)
    assert not values_agree({"a": 1}, {"b": 1}, 1e-6)
    assert not values_agree("1", 1, 1e-6)
    assert values_agree(None, None, 0.0)
    assert values_agree(100.0, 100.5, 0.01), "relative tolerance"
