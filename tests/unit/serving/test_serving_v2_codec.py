"""V2 codec: every datatype in JSON and binary, BYTES, outputs selection, encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from mlkube_serving.errors import InvalidRequest
from mlkube_serving.protocols.v2 import decode_request, encode_response
from mlkube_serving.tensors import DATATYPES, InferenceResponse, Tensor

NUMERIC = [name for name in DATATYPES if name != "BYTES"]


def json_request(datatype: str, shape: list[int], data: Any, **extra: Any) -> bytes:
    tensor = {"name": "x", "datatype": datatype, "shape": shape, "data": data}
    return orjson.dumps({"inputs": [tensor], **extra})


@pytest.mark.parametrize("datatype", NUMERIC)
def test_numeric_datatypes_from_json(datatype: str) -> None:
    values = [[0, 1, 1], [0, 1, 0]] if datatype == "BOOL" else [[1, 2, 3], [4, 5, 6]]
    request, binary = decode_request(json_request(datatype, [2, 3], values), None)
    tensor = request.inputs[0]
    assert tensor.data.dtype == DATATYPES[datatype]
    assert tensor.data.shape == (2, 3)
    assert binary == set()


def test_json_data_is_one_array_not_a_view() -> None:
    """Nested data already has its shape: no reshape view, so the drift hook holds one array."""
    nested, _ = decode_request(json_request("FP64", [1, 3], [[1.0, 2.0, 3.0]]), None)
    assert nested.inputs[0].data.base is None
    assert nested.inputs[0].data.tolist() == [[1.0, 2.0, 3.0]]
    flat, _ = decode_request(json_request("FP64", [1, 3], [1.0, 2.0, 3.0]), None)
    assert flat.inputs[0].data.shape == (1, 3)  # flat data is still shaped
    assert flat.inputs[0].data.tolist() == [[1.0, 2.0, 3.0]]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_numeric_datatypes_binary_round_trip(datatype: str) -> None:
    array = (np.arange(6) % 2).astype(DATATYPES[datatype]).reshape(2, 3)
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": datatype,
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": array.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    request, binary = decode_request(head + array.tobytes(), len(head))
    assert np.array_equal(request.inputs[0].data, array)
    assert binary is True
    body, length = encode_response(InferenceResponse("m", None, [request.inputs[0]]), binary)
    assert length is not None
    meta = orjson.loads(body[:length])["outputs"][0]
    assert meta["datatype"] == datatype
    raw = body[length : length + meta["parameters"]["binary_data_size"]]
    assert np.array_equal(np.frombuffer(raw, DATATYPES[datatype]).reshape(2, 3), array)


def test_bytes_json_and_binary() -> None:
    request, _ = decode_request(json_request("BYTES", [2], ["héllo", ""]), None)
    assert request.inputs[0].data.tolist() == ["héllo".encode(), b""]
    items = [b"ab", b"\x00\xff"]
    raw = b"".join(len(i).to_bytes(4, "little") + i for i in items)
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    request, _ = decode_request(head + raw, len(head))
    assert request.inputs[0].data.tolist() == items
    body, length = encode_response(
        InferenceResponse("m", "1", [Tensor("s", request.inputs[0].data, "BYTES")]), {"s"}
    )
    assert length is not None and body[length:] == raw
    text, no_binary = encode_response(
        InferenceResponse("m", "1", [Tensor("s", np.array([b"ab"], dtype=object), "BYTES")]), set()
    )
    assert no_binary is None
    assert orjson.loads(text)["outputs"][0]["data"] == ["ab"]


def test_outputs_and_per_output_binary_flags() -> None:
    outputs = [{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}]
    request, binary = decode_request(json_request("FP32", [1], [1.0], outputs=outputs), None)
    assert request.outputs == ["a", "b"]
    assert binary == {"a"}


def test_id_and_parameters_are_kept() -> None:
    request, _ = decode_request(json_request("FP32", [1], [1], id="r1", parameters={"k": 1}), None)
    assert request.id == "r1"
    assert request.parameters == {"k": 1}
    body, _ = encode_response(InferenceResponse("m", "2", [], id="r1"), set())
    assert orjson.loads(body) == {
        "model_name": "m",
        "model_version": "2",
        "id": "r1",
        "outputs": [],
    }


def test_json_output_is_flat_row_major() -> None:
    tensor = Tensor("p", np.arange(6, dtype=np.float64).reshape(2, 3).T, "FP64")  # not contiguous
    body, _ = encode_response(InferenceResponse("m", None, [tensor]), set())
    output = orjson.loads(body)["outputs"][0]
    assert output["shape"] == [3, 2]
    assert output["data"] == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


@pytest.mark.parametrize(
    ("body", "header", "reason"),
    [
        (b"not json", None, "not valid JSON"),
        (b"[]", None, "JSON object"),
        (b'{"inputs": []}', None, "non-empty"),
        (json_request("FP32", [2, 2], [1, 2, 3]), None, "do not fill"),
        (json_request("FP32", [-1], [1]), None, "non-negative"),
        (json_request("FP32", [True], [1]), None, "non-negative"),
        (json_request("FP99", [1], [1]), None, "unknown datatype"),
        (json_request("FP32", [2], ["a", "b"]), None, "not FP32"),
        (json_request("INT8", [1], [1000]), None, "not INT8"),
        (json_request("INT64", [1], [2**63]), None, "not INT64"),
        (json_request("UINT8", [1], [-1]), None, "not UINT8"),
        (json_request("FP32", [2], [[1], [2, 3]]), None, "not FP32"),
        (json_request("BYTES", [1], [1]), None, "strings"),
        (json_request("FP32", [1], [1], id=5), None, "'id'"),
        (json_request("FP32", [1], [1], outputs={"a": 1}), None, "'outputs'"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None, "no 'data'"),
        (b'{"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}', None, "'name'"),
        (b"{}", 10, "exceeds the body"),
    ],
)
def test_malformed_requests_are_invalid(body: bytes, header: int | None, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        decode_request(body, header)


def test_binary_size_must_match_shape() -> None:
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [4],
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    )
    with pytest.raises(InvalidRequest, match="8 bytes for shape"):
        decode_request(head + b"\0" * 8, len(head))
    with pytest.raises(InvalidRequest, match="exceeds the binary payload"):
        decode_request(head + b"\0" * 4, len(head))
