"""gRPC OIP: our descriptors match the protocol's (tritonclient's generated ones), and tensors
decode and encode both ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from mlkube_serving.errors import InvalidRequest
from mlkube_serving.protocols.grpc_schema import MESSAGE_CLASSES as M
from mlkube_serving.protocols.grpc_service import CONTENTS, decode_infer, encode_infer
from mlkube_serving.tensors import InferenceResponse, Tensor


def fields_of(descriptor: Any) -> dict[str, tuple[int, int, bool, str]]:
    return {
        f.name: (f.number, f.type, repeated(f), f.message_type.full_name if f.message_type else "")
        for f in descriptor.fields
    }


def repeated(field: Any) -> bool:
    found = getattr(field, "is_repeated", None)  # protobuf 6+; `label` is deprecated there
    return bool(found) if found is not None else field.label == field.LABEL_REPEATED


@pytest.mark.parametrize("name", sorted(M))
def test_every_message_matches_the_protocols_definition(name: str) -> None:
    theirs: Any = service_pb2
    for part in name.split("."):
        theirs = getattr(theirs, part)
    assert fields_of(M[name].DESCRIPTOR) == fields_of(theirs.DESCRIPTOR)


def infer_request(**kwargs: Any) -> Any:
    return M["ModelInferRequest"](model_name="m", **kwargs)


@pytest.mark.parametrize("datatype", sorted(CONTENTS))
def test_typed_contents_of_every_datatype(datatype: str) -> None:
    values: list[Any] = {
        "BOOL": [True, False], "BYTES": [b"a", b"bc"], "FP32": [1.5, 2.5], "FP64": [1.5, 2.5],
    }.get(datatype, [1, 2])  # fmt: skip
    request = infer_request()
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[1, 2])
    getattr(tensor.contents, CONTENTS[datatype]).extend(values)
    decoded = decode_infer(request).inputs[0]
    assert decoded.data.shape == (1, 2) and decoded.data.reshape(-1).tolist() == values


def test_raw_contents_and_bytes_with_length_prefixes() -> None:
    data = np.arange(6, dtype=np.int32).reshape(2, 3)
    words = b"".join(len(w).to_bytes(4, "little") + w for w in (b"hi", b"there"))
    request = infer_request(raw_input_contents=[data.tobytes(), words])
    request.inputs.add(name="n", datatype="INT32", shape=[2, 3])
    request.inputs.add(name="w", datatype="BYTES", shape=[2])
    request.outputs.add(name="y")
    request.parameters["p"].int64_param = 3
    decoded = decode_infer(request)
    assert np.array_equal(decoded.inputs[0].data, data)
    assert decoded.inputs[1].data.tolist() == [b"hi", b"there"]
    assert decoded.outputs == ["y"] and decoded.parameters == {"p": 3}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda r: None, "'inputs' must be a non-empty list"),
        (lambda r: r.inputs.add(name="x", datatype="FP128", shape=[1]), "unknown datatype"),
        (lambda r: r.inputs.add(name="x", datatype="FP16", shape=[1]), "raw_input_contents"),
        (
            lambda r: r.inputs.add(
                name="x", datatype="INT8", shape=[1]
            ).contents.int_contents.append(300),
            "contents are not INT8",
        ),
    ],
)
def test_bad_requests_say_what_is_wrong(build: Any, message: str) -> None:
    request = infer_request()
    build(request)
    with pytest.raises(InvalidRequest, match=message):
        decode_infer(request)


def test_raw_entries_must_match_the_inputs() -> None:
    request = infer_request(raw_input_contents=[b"", b""])
    request.inputs.add(name="x", datatype="INT8", shape=[0])
    with pytest.raises(InvalidRequest, match="2 entries for 1 inputs"):
        decode_infer(request)


def test_answers_use_raw_output_contents() -> None:
    response = InferenceResponse("m", "2", [
        Tensor("y", np.array([[1.5], [2.5]]), "FP64"),
        Tensor("label", np.array(["yes", "no"], dtype=object), "BYTES"),
    ], "id-1")  # fmt: skip
    message = encode_infer(response)
    parsed = service_pb2.ModelInferResponse.FromString(message.SerializeToString())
    assert (parsed.model_name, parsed.model_version, parsed.id) == ("m", "2", "id-1")
    assert [(o.name, o.datatype, list(o.shape)) for o in parsed.outputs] == [
        ("y", "FP64", [2, 1]), ("label", "BYTES", [2])]  # fmt: skip
    assert np.frombuffer(parsed.raw_output_contents[0], "<f8").tolist() == [1.5, 2.5]
    assert parsed.raw_output_contents[1] == b"\x03\x00\x00\x00yes\x02\x00\x00\x00no"
