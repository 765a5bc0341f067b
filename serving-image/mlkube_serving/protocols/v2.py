"""Open Inference Protocol (V2) request decoding and response encoding, JSON and binary.

Works on bytes and numpy arrays only: JSON `data` goes straight into `np.asarray` and numpy
arrays go straight into orjson, so there is no `.tolist()` round trip on the hot path. The binary
tensor extension (`Inference-Header-Content-Length`) is what `tritonclient` uses by default.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from mlkube_serving.errors import InvalidRequest
from mlkube_serving.protocols import Call, Reply
from mlkube_serving.tensors import DATATYPES, InferenceRequest, InferenceResponse, Tensor

if TYPE_CHECKING:
    from mlkube_serving.batching import Batcher
    from mlkube_serving.dataplane import ModelEntry

HEADER_LENGTH = "inference-header-content-length"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_FP64 = DATATYPES["FP64"]


def load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc


_MAX_DIM = 2**62


def _shape_of(raw: Any, name: str) -> tuple[int, ...]:
    if type(raw) is list:
        for d in raw:  # a loop, not all(genexpr): this runs for every input of every request
            if type(d) is not int or not 0 <= d < _MAX_DIM:
                break
        else:
            return tuple(raw)
    raise InvalidRequest(f"input {name!r}: shape must be a list of non-negative integers")


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _decode_bytes_json(data: Any, name: str) -> np.ndarray[Any, Any]:
    items = _flatten(data)
    if not all(isinstance(v, str) for v in items):
        raise InvalidRequest(f"input {name!r}: BYTES data must be strings")
    return np.array([v.encode() for v in items] if items else [], dtype=object)


def _decode_bytes_binary(raw: memoryview, count: int, name: str) -> np.ndarray[Any, Any]:
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidRequest(f"input {name!r}: truncated BYTES length prefix")
        size = int.from_bytes(raw[offset : offset + 4], "little")
        offset += 4
        if offset + size > len(raw):
            raise InvalidRequest(f"input {name!r}: BYTES element overruns its buffer")
        items.append(bytes(raw[offset : offset + size]))
        offset += size
    if len(items) != count:
        raise InvalidRequest(f"input {name!r}: {len(items)} BYTES elements for {count} in shape")
    return np.array(items, dtype=object) if items else np.empty(0, dtype=object)


def decode_input(raw: Any, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    """Decode one input; returns the tensor and the offset of the next binary input."""
    if not isinstance(raw, dict):
        raise InvalidRequest("each input must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str):
        raise InvalidRequest("each input needs a string 'name'")
    datatype = raw.get("datatype")
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None or not isinstance(datatype, str):
        raise InvalidRequest(f"input {name!r}: unknown datatype {datatype!r}")
    shape = _shape_of(raw.get("shape"), name)
    count = math.prod(shape)
    parameters = raw.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if size is not None:
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise InvalidRequest(f"input {name!r}: binary_data_size exceeds the binary payload")
        chunk = binary[offset : offset + size]
        if dtype.kind == "O":
            array = _decode_bytes_binary(chunk, count, name)
        elif size != count * dtype.itemsize:
            raise InvalidRequest(
                f"input {name!r}: {size} bytes for shape {list(shape)} of {datatype}"
            )
        else:
            array = np.frombuffer(chunk, dtype=dtype.newbyteorder("<"), count=count)
        offset += size
    elif "data" in raw:
        data = raw["data"]
        if dtype.kind == "O":
            array = _decode_bytes_json(data, name)
        else:
            try:
                if dtype is _FP64:  # JSON numbers always fit a double
                    array = np.asarray(data, dtype=dtype)
                else:
                    with np.errstate(over="raise", invalid="raise"):
                        array = np.asarray(data, dtype=dtype)
            except (ValueError, TypeError, OverflowError, FloatingPointError) as exc:
                raise InvalidRequest(f"input {name!r}: data is not {datatype}: {exc}") from exc
        if array.size != count:
            raise InvalidRequest(
                f"input {name!r}: {array.size} values do not fill shape {list(shape)}"
            )
    else:
        raise InvalidRequest(f"input {name!r} has no 'data'")
    if array.shape != shape:  # nested JSON data already has it: no view (no second object)
        array = array.reshape(shape)
    return Tensor(name, array, datatype), offset


def _decode_outputs(raw: Any) -> tuple[list[str] | None, set[str]]:
    if raw is None:
        return None, set()
    if not isinstance(raw, list):
        raise InvalidRequest("'outputs' must be a list")
    names: list[str] = []
    binary: set[str] = set()
    for item in raw:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise InvalidRequest("each requested output needs a string 'name'")
        names.append(name)
        params = item.get("parameters")
        if isinstance(params, dict) and params.get("binary_data") is True:
            binary.add(name)
    return names, binary


def decode_request(
    body: bytes, header_length: int | None
) -> tuple[InferenceRequest, set[str] | bool]:
    """Decode a V2 infer body; also return which outputs to send binary (True: all)."""
    if header_length is not None:
        if not 0 <= header_length <= len(body):
            raise InvalidRequest("Inference-Header-Content-Length exceeds the body")
        payload = load_json(body[:header_length])
        binary = memoryview(body)[header_length:]
    else:
        payload = load_json(body)
        binary = memoryview(b"")
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object")
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidRequest("'inputs' must be a non-empty list")
    inputs = []
    offset = 0
    for raw in raw_inputs:
        tensor, offset = decode_input(raw, binary, offset)
        inputs.append(tensor)
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("'id' must be a string")
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest("'parameters' must be an object")
    outputs, binary_outputs = _decode_outputs(payload.get("outputs"))
    binary_all = bool(parameters and parameters.get("binary_data_output") is True)
    request = InferenceRequest(inputs, request_id, outputs, parameters)
    return request, (True if binary_all else binary_outputs)


def _json_data(array: np.ndarray[Any, Any]) -> Any:
    flat = array.reshape(-1)
    if flat.dtype.kind in "biuf":
        return flat if flat.flags.c_contiguous else np.ascontiguousarray(flat)
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]


def _binary_data(array: np.ndarray[Any, Any]) -> bytes:
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts = []
    for value in array.reshape(-1):
        item = value if isinstance(value, bytes) else str(value).encode()
        parts.append(len(item).to_bytes(4, "little"))
        parts.append(item)
    return b"".join(parts)


def encode_response(
    response: InferenceResponse, binary_outputs: set[str] | bool
) -> tuple[bytes, int | None]:
    """Encode a response; returns the body and the JSON header length when binary was used."""
    outputs = []
    chunks: list[bytes] = []
    for tensor in response.outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.data.shape,
        }
        if binary_outputs is True or (binary_outputs and tensor.name in binary_outputs):
            chunk = _binary_data(tensor.data)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = _json_data(tensor.data)
        outputs.append(entry)
    body: dict[str, Any] = {"model_name": response.model_name, "outputs": outputs}
    if response.model_version is not None:
        body["model_version"] = response.model_version
    if response.id is not None:
        body["id"] = response.id
    if response.parameters:
        body["parameters"] = response.parameters
    header = orjson.dumps(body, option=_NUMPY)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


# --- HTTP handlers -------------------------------------------------------------------------


def _status_reply(ok: bool, body: dict[str, Any]) -> Reply:
    return Reply(200 if ok else 503, orjson.dumps(body))


def server_live(call: Call) -> Reply:
    return _status_reply(call.dataplane.live(), {"live": call.dataplane.live()})


def server_ready(call: Call) -> Reply:
    ready = call.dataplane.ready()
    return _status_reply(ready, {"ready": ready})


def server_metadata(call: Call) -> Reply:
    return Reply(200, orjson.dumps(call.dataplane.server_metadata()))


def model_ready(call: Call) -> Reply:
    assert call.model is not None
    ready = call.dataplane.model_ready(call.model, call.version)
    return _status_reply(ready, {"name": call.model, "ready": ready})


def model_metadata(call: Call) -> Reply:
    assert call.model is not None
    return Reply(200, orjson.dumps(call.dataplane.model_metadata(call.model, call.version)))


def infer(call: Call) -> Reply:
    entry, request, binary = decode_call(call)
    return reply_of(call.dataplane.infer_entry(entry, request), binary)


async def infer_batched(call: Call, batcher: Batcher) -> Reply:
    """`infer` through the adaptive batcher (batching.py)."""
    entry, request, binary = decode_call(call)
    return reply_of(await batcher.infer(entry, request), binary)


def decode_call(call: Call) -> tuple[ModelEntry, InferenceRequest, set[str] | bool]:
    """The served model, the decoded request, and which outputs go binary (True: all)."""
    assert call.model is not None
    entry = call.dataplane.get(call.model, call.version)  # unknown model: 404 before any 400
    raw_length = call.header(HEADER_LENGTH.encode())
    header_length = None
    if raw_length is not None:
        try:
            header_length = int(raw_length)
        except ValueError as exc:
            raise InvalidRequest("Inference-Header-Content-Length is not an integer") from exc
    request, binary = decode_request(call.body, header_length)
    return entry, request, binary


def reply_of(response: InferenceResponse, binary: set[str] | bool) -> Reply:
    body, json_length = encode_response(response, binary)
    if json_length is None:
        return Reply(200, body)
    return Reply(
        200,
        body,
        ((HEADER_LENGTH.encode(), str(json_length).encode()),),
        b"application/octet-stream",
    )
