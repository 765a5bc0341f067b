"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) on its own port.

Each server worker runs a `grpc.aio` server on its own event loop, next to the HTTP app, bound
to the same port (SO_REUSEPORT, gRPC's default on Linux) so the kernel spreads connections
over workers as it does for HTTP. Requests go through the same dataplane, limits, batcher and
metrics as HTTP ones (`protocol="grpc"`); errors carry the status code matching the HTTP one
(400 INVALID_ARGUMENT, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 504
DEADLINE_EXCEEDED) and the same reason. Tensors arrive as typed `contents` or as
`raw_input_contents` (what tritonclient sends); answers always use `raw_output_contents`.

With payload logging on, a sampled ModelInfer call (the coin is flipped as the handler ends,
before grpcio writes the answer) is offered to the worker's one `PayloadLogger` as references
to its request message and its answer; a sender task renders them as the V2 JSON an HTTP
client would have sent and been answered (`render_call`), so one collector reads both
protocols and redaction works the same.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
import numpy as np
import orjson

from mlkube_serving import metrics
from mlkube_serving._http.errors import ServiceUnavailable
from mlkube_serving.errors import (
    InvalidRequest,
    RequestTimeout,
    ServingError,
    TooManyRequests,
    render_error,
)
from mlkube_serving.payload_log import JSON, Bodies, PayloadLogger
from mlkube_serving.protocols.grpc_schema import MESSAGE_CLASSES as M
from mlkube_serving.protocols.grpc_schema import METHODS, SERVICE
from mlkube_serving.protocols.v2 import _binary_data, _decode_bytes_binary, encode_response
from mlkube_serving.tensors import DATATYPES, InferenceRequest, InferenceResponse, Tensor

if TYPE_CHECKING:
    from mlkube_serving.app import ServingApp

log = logging.getLogger(__name__)

STATUS_CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# Which InferTensorContents field carries each datatype (FP16 travels raw only).
CONTENTS: Final = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip
Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
JSON_EXPANSION: Final = 3  # a logged call's V2 JSON against its binary size, about
INTERNAL_ERROR: Final = b'{"error":"internal server error"}'  # the HTTP app's 500 body
# A logged request that has no V2 JSON form: the message as it arrived (see `request_json`).
PROTOBUF_REQUEST: Final = b"application/x-protobuf; proto=inference.ModelInferRequest"


def parameter_value(param: Any) -> Any:
    kind = param.WhichOneof("parameter_choice")
    return getattr(param, kind) if kind else None


def decode_infer(message: Any) -> InferenceRequest:
    """A ModelInferRequest as the dataplane's request; InvalidRequest says what is wrong."""
    if not message.inputs:
        raise InvalidRequest("'inputs' must be a non-empty list")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidRequest(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs"
        )
    inputs = [decode_tensor(t, raw[i] if raw else None) for i, t in enumerate(message.inputs)]
    outputs = [o.name for o in message.outputs] or None
    params = {k: parameter_value(v) for k, v in message.parameters.items()} or None
    return InferenceRequest(inputs, message.id or None, outputs, params)


def decode_tensor(tensor: Any, raw: bytes | None) -> Tensor:
    name, datatype = tensor.name, tensor.datatype
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise InvalidRequest(f"input {name!r}: unknown datatype {datatype!r}")
    shape = tuple(tensor.shape)
    if any(d < 0 for d in shape):
        raise InvalidRequest(f"input {name!r}: shape must be non-negative integers")
    count = math.prod(shape)
    if raw is not None:
        if dtype.kind == "O":
            array = _decode_bytes_binary(memoryview(raw), count, name)
        elif len(raw) != count * dtype.itemsize:
            raise InvalidRequest(
                f"input {name!r}: {len(raw)} raw bytes for shape {list(shape)} of {datatype}"
            )
        else:
            array = np.frombuffer(raw, dtype=dtype.newbyteorder("<"), count=count)
    else:
        field = CONTENTS.get(datatype)
        if field is None:
            raise InvalidRequest(f"input {name!r}: {datatype} must be sent in raw_input_contents")
        values = getattr(tensor.contents, field)
        if dtype.kind == "O":
            array = np.array(list(values), dtype=object) if values else np.empty(0, object)
        else:
            try:
                with np.errstate(over="raise", invalid="raise"):
                    array = np.asarray(values, dtype=dtype)
            except (ValueError, OverflowError, FloatingPointError) as exc:
                raise InvalidRequest(f"input {name!r}: contents are not {datatype}") from exc
        if array.size != count:
            raise InvalidRequest(
                f"input {name!r}: {array.size} values do not fill shape {list(shape)}"
            )
    return Tensor(name, array.reshape(shape), datatype)


def encode_infer(response: InferenceResponse) -> Any:
    message = M["ModelInferResponse"](
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id or "",
    )
    for tensor in response.outputs:
        data = tensor.data
        datatype = tensor.datatype
        if datatype == "BYTES" or data.dtype.kind in "OUS":
            datatype = "BYTES"
        message.outputs.add(name=tensor.name, datatype=datatype, shape=list(data.shape))
        message.raw_output_contents.append(_binary_data(data))
    return message


# --- payload logging: the V2 JSON of a call, rendered by the logger's sender task -----------


def render_call(message: Any, response: InferenceResponse | None, error: bytes) -> Bodies:
    """The logged bodies of one ModelInfer call: the request as `request_json`, the answer as
    the HTTP JSON path's body for the same response (`error`, `{"error": ...}`, if none)."""
    request, request_type = request_json(message)
    answer = error if response is None else encode_response(response, False)[0]
    return request, request_type, answer, JSON


def request_json(message: Any) -> tuple[bytes, bytes]:
    """A ModelInferRequest as the V2 JSON body an HTTP client sends for it: `id`, `parameters`,
    `inputs` (name, shape, datatype, parameters, row-major flat `data`) and `outputs`, the
    model name being in the URL. Typed `contents` and `raw_input_contents` are decoded by the
    service's own `decode_tensor`, so both give the same `data`. A request whose tensors have
    no JSON form (raw bytes that do not fit their shape, an unknown datatype, BYTES that are
    not UTF-8) is kept as the serialized message (`PROTOBUF_REQUEST`) instead."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        return message.SerializeToString(), PROTOBUF_REQUEST
    inputs = []
    for i, tensor in enumerate(message.inputs):
        data = tensor_json(tensor, raw[i] if raw else None)
        if data is None:
            return message.SerializeToString(), PROTOBUF_REQUEST
        entry: dict[str, Any] = {"name": tensor.name, "shape": list(tensor.shape),
                                 "datatype": tensor.datatype}  # fmt: skip
        if tensor.parameters:
            entry["parameters"] = parameters_json(tensor.parameters)
        entry["data"] = data
        inputs.append(entry)
    body: dict[str, Any] = {}
    if message.id:
        body["id"] = message.id
    if message.parameters:
        body["parameters"] = parameters_json(message.parameters)
    body["inputs"] = inputs
    if message.outputs:
        body["outputs"] = [
            {"name": o.name, "parameters": parameters_json(o.parameters)}
            if o.parameters
            else {"name": o.name}
            for o in message.outputs
        ]
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), JSON


def parameters_json(params: Any) -> dict[str, Any]:
    return {k: parameter_value(v) for k, v in params.items()}


def tensor_json(tensor: Any, raw: bytes | None) -> Any:
    """The tensor's values as V2 JSON `data` (flat, row-major), None when they have none."""
    values: Any
    try:
        values = decode_tensor(tensor, raw).data.reshape(-1)
    except InvalidRequest:
        field = CONTENTS.get(tensor.datatype)
        if raw is not None or field is None:
            return None
        values = list(getattr(tensor.contents, field))  # as sent (they do not fit the shape)
    if isinstance(values, list) or values.dtype.kind == "O":
        try:
            return [v.decode() if isinstance(v, bytes) else v for v in values]
        except UnicodeDecodeError:
            return None
    return np.ascontiguousarray(values)


class InferenceServicer:
    """The six OIP RPCs over the app's dataplane, limits and batcher."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app
        self.plane = app.dataplane

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return M["ServerLiveResponse"](live=self.plane.live())

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return M["ServerReadyResponse"](ready=self.plane.ready())

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ready = await self._guard(context, lambda: self.plane.model_ready(
            request.name, request.version or None))  # fmt: skip
        return M["ModelReadyResponse"](ready=ready)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        meta = self.plane.server_metadata()
        return M["ServerMetadataResponse"](name=meta["name"], version=meta["version"],
                                           extensions=meta["extensions"])  # fmt: skip

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        meta = await self._guard(context, lambda: self.plane.model_metadata(
            request.name, request.version or None))  # fmt: skip
        return M["ModelMetadataResponse"](
            name=meta["name"], versions=meta["versions"], platform=meta["platform"],
            inputs=meta["inputs"], outputs=meta["outputs"],
        )  # fmt: skip

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        model = request.model_name
        status = 200
        response: InferenceResponse | None = None
        error = INTERNAL_ERROR
        shed = False
        try:
            response = await self._infer(request)
            return encode_infer(response)
        except ServingError as exc:
            status, error = render_error(exc)
            # Shed before any work (too many calls, queued bytes spent): HTTP sheds these
            # before reading the body and logs nothing; neither does this.
            if isinstance(exc, TooManyRequests) or (type(exc) is ServiceUnavailable):
                shed = True
            await context.abort(STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL),
                                exc.message)  # fmt: skip
        except asyncio.CancelledError:
            status = 499
            raise
        except Exception:
            status = 500
            log.exception("unhandled error serving gRPC ModelInfer")
            await context.abort(grpc.StatusCode.INTERNAL, "internal server error")
        finally:
            label = model if self.plane.has_model(model) else "_unknown"
            metrics.observe_request(label, "grpc", status, time.perf_counter() - started)
            payload_log = self.app.payload_log
            # As over HTTP: the coin first, nothing else for a call it does not pick; a
            # cancelled call (499) has no answer to log.
            if (
                payload_log is not None
                and status != 499
                and not shed
                and payload_log.coin() < payload_log.rate
            ):
                self._offer(payload_log, label, request, status,
                            response if status == 200 else None, error)  # fmt: skip
        raise AssertionError("unreachable")  # pragma: no cover (abort raises)

    @staticmethod
    def _offer(
        payload_log: PayloadLogger,
        model: str,
        message: Any,
        status: int,
        response: InferenceResponse | None,
        error: bytes,
    ) -> None:
        """Hand a sampled call to the payload logger: references only, rendered in its sender
        task. Never raises (the answer is already decided)."""
        try:
            if response is None:
                answered = len(error)
            else:
                answered = sum(t.data.nbytes for t in response.outputs)
            # Counted at the JSON it becomes (numbers as text take ~3x their binary size).
            payload_log.offer_rendered(
                model, status, JSON_EXPANSION * (message.ByteSize() + answered),
                functools.partial(render_call, message, response, error), "grpc",
            )  # fmt: skip
        except Exception:
            log.exception("payload logging a gRPC call failed")

    async def _infer(self, message: Any) -> InferenceResponse:
        app = self.app
        limit = app.settings.max_concurrency
        if app.inflight >= limit:
            raise TooManyRequests(f"too many concurrent requests (limit {limit} per worker)")
        app.inflight += 1
        timeout = app.settings.request_timeout
        try:
            entry = self.plane.get(message.model_name, message.model_version or None)
            # As over HTTP: small requests on the loop (or through the batcher), large ones and
            # user code decoded and run in the inference thread, held in the queued-bytes
            # budget; all under the request timeout.
            size = message.ByteSize()
            small = size <= app.settings.inline_max_bytes
            async with asyncio.timeout(timeout):
                if small and app.batcher is not None:
                    response = await app.batcher.infer(entry, decode_infer(message))
                elif small and entry.runtime.inline_safe:
                    response = self.plane.infer_entry(entry, decode_infer(message))
                else:
                    response = await self._threaded(entry, message, size)
            return response
        except TimeoutError as exc:
            raise RequestTimeout(f"request did not finish within {timeout:g}s") from exc
        finally:
            app.inflight -= 1

    async def _threaded(self, entry: Any, message: Any, size: int) -> InferenceResponse:
        """Decode and infer in the inference thread; `size` bytes stay reserved in the
        queued-bytes budget until the thread is done with them (503 when they do not fit)."""
        queued = self.app.queued
        if not queued.try_reserve(size):
            raise queued.spent(size)
        try:
            task = asyncio.get_running_loop().run_in_executor(
                self.app.pool, lambda: self.plane.infer_entry(entry, decode_infer(message))
            )
        except BaseException:
            queued.release(size)
            raise
        task.add_done_callback(self.app.releaser(size))
        return await task

    async def _guard(self, context: grpc.aio.ServicerContext, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except ServingError as exc:
            await context.abort(STATUS_CODES.get(exc.status, grpc.StatusCode.INTERNAL),
                                exc.message)  # fmt: skip
            raise AssertionError("unreachable") from exc  # pragma: no cover (abort raises)


def generic_handler(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    handlers = {}
    for rpc, (request, response) in METHODS.items():
        handlers[rpc] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, rpc),
            request_deserializer=M[request].FromString,
            response_serializer=M[response].SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def start_server(app: ServingApp, host: str, port: int) -> grpc.aio.Server:
    """The gRPC server of this worker, serving on `host:port` (shared with the other workers)."""
    limit = app.settings.max_body_bytes
    server = grpc.aio.server(options=[
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", -1),
        # Clients reconnect now and then, so a Service's new pods get connections (and calls).
        ("grpc.max_connection_age_ms", 60_000),
        ("grpc.max_connection_age_grace_ms", 10_000),
    ])  # fmt: skip
    server.add_generic_rpc_handlers((generic_handler(InferenceServicer(app)),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    await server.start()
    return server
