"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) on its own port.

Each server worker runs a `grpc.aio` server on its own event loop, next to the HTTP app, bound
to the same port (SO_REUSEPORT, gRPC's default on Linux) so the kernel spreads connections
over workers as it does for HTTP. Requests go through the same dataplane, limits, batcher and
metrics as HTTP ones (`protocol="grpc"`); errors carry the status code matching the HTTP one
(400 INVALID_ARGUMENT, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 504
DEADLINE_EXCEEDED) and the same reason. Tensors arrive as typed `contents` or as
`raw_input_contents` (what tritonclient sends); answers always use `raw_output_contents`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
import numpy as np

from mlkube_serving import metrics
from mlkube_serving.errors import InvalidRequest, RequestTimeout, ServingError, TooManyRequests
from mlkube_serving.protocols.grpc_schema import MESSAGE_CLASSES as M
from mlkube_serving.protocols.grpc_schema import METHODS, SERVICE
from mlkube_serving.protocols.v2 import _binary_data, _decode_bytes_binary
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
        try:
            return await self._infer(request)
        except ServingError as exc:
            status = exc.status
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
        raise AssertionError("unreachable")  # pragma: no cover (abort raises)

    async def _infer(self, message: Any) -> Any:
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
            return encode_infer(response)
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
