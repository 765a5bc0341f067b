"""ONNX models served with onnxruntime.

One intra-op and one inter-op thread with spinning off: the server scales with worker processes,
and spinning threads would burn the cores those processes need. Input and output names and
dtypes are read once at load so `predict` does no session introspection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from mlkube_serving.errors import InferenceError, InvalidRequest, ModelLoadError
from mlkube_serving.onnx_session import densify, make_session
from mlkube_serving.runtimes.base import ModelRuntime, find_artifact, select_outputs
from mlkube_serving.tensors import Tensor, TensorSpec, datatype_of, to_feature_matrix

_ONNX_TYPES: dict[str, tuple[np.dtype[Any], str]] = {
    "tensor(float)": (np.dtype(np.float32), "FP32"),
    "tensor(double)": (np.dtype(np.float64), "FP64"),
    "tensor(float16)": (np.dtype(np.float16), "FP16"),
    "tensor(int64)": (np.dtype(np.int64), "INT64"),
    "tensor(int32)": (np.dtype(np.int32), "INT32"),
    "tensor(int16)": (np.dtype(np.int16), "INT16"),
    "tensor(int8)": (np.dtype(np.int8), "INT8"),
    "tensor(uint8)": (np.dtype(np.uint8), "UINT8"),
    "tensor(uint16)": (np.dtype(np.uint16), "UINT16"),
    "tensor(uint32)": (np.dtype(np.uint32), "UINT32"),
    "tensor(uint64)": (np.dtype(np.uint64), "UINT64"),
    "tensor(bool)": (np.dtype(np.bool_), "BOOL"),
    "tensor(string)": (np.dtype(object), "BYTES"),
}
# onnxruntime raises these for inputs the model cannot take: a client error, not a server fault.
_CLIENT_FAULTS: tuple[type[BaseException], ...] = (
    ort.capi.onnxruntime_pybind11_state.InvalidArgument,
    ort.capi.onnxruntime_pybind11_state.InvalidGraph,
)


def _spec_of(arg: Any) -> TensorSpec:
    _, datatype = _ONNX_TYPES.get(arg.type, (np.dtype(object), "BYTES"))
    shape = tuple(d if isinstance(d, int) else -1 for d in (arg.shape or []))
    return TensorSpec(arg.name, datatype, shape)


class OnnxRuntime(ModelRuntime):
    """Serves a `.onnx` file."""

    framework = "onnx"

    def __init__(self, model_path: str) -> None:
        super().__init__(model_path)
        self.active_runtime = "onnxruntime"
        self._session: ort.InferenceSession | None = None
        self._input_names: list[str] = []
        self._input_dtypes: list[np.dtype[Any]] = []
        self._input_ranks: list[int] = []
        self._output_names: list[str] = []

    def load(self) -> None:
        path = find_artifact(self.model_path, (".onnx",))
        try:
            self._session = make_session(str(path))
        except Exception as exc:
            raise ModelLoadError(f"cannot load ONNX model {path}: {exc}") from exc
        args = self._session.get_inputs()
        self._input_names = [a.name for a in args]
        self._input_dtypes = [_ONNX_TYPES.get(a.type, (np.dtype(object), ""))[0] for a in args]
        self._input_ranks = [len(a.shape or []) for a in args]
        self._output_names = [o.name for o in self._session.get_outputs()]
        self.inputs = [_spec_of(a) for a in args]
        self.outputs = [_spec_of(o) for o in self._session.get_outputs()]
        first = self.inputs[0].shape if len(self.inputs) == 1 else ()
        if len(first) == 2 and first[1] > 0:
            self.n_features = first[1]

    def _feeds(self, inputs: Sequence[Tensor]) -> dict[str, np.ndarray[Any, Any]]:
        if len(self._input_names) == 1:
            if len(inputs) == 1 and inputs[0].data.ndim == self._input_ranks[0]:
                data = inputs[0].data
            elif self._input_ranks[0] == 2:
                data = to_feature_matrix(inputs, self.n_features)
            else:
                raise InvalidRequest(
                    f"model takes one input of rank {self._input_ranks[0]}; got {len(inputs)} "
                    f"input(s) of shape(s) {[list(t.data.shape) for t in inputs]}"
                )
            return {self._input_names[0]: _cast(data, self._input_dtypes[0])}
        by_name = {t.name: t.data for t in inputs}
        missing = [n for n in self._input_names if n not in by_name]
        if missing:
            raise InvalidRequest(f"missing input(s): {', '.join(missing)}")
        return {
            name: _cast(by_name[name], dtype)
            for name, dtype in zip(self._input_names, self._input_dtypes, strict=True)
        }

    def predict(self, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> list[Tensor]:
        assert self._session is not None, "load() first"
        names = select_outputs(dict.fromkeys(self._output_names), outputs, self._output_names)
        feeds = self._feeds(inputs)
        try:
            values = self._session.run(names, feeds)
        except _CLIENT_FAULTS as exc:
            raise InvalidRequest(f"model rejected the input: {exc}") from exc
        except Exception as exc:
            raise InferenceError(f"onnxruntime failed: {exc}") from exc
        result = []
        for name, value in zip(names, values, strict=True):
            array = densify(value)
            result.append(Tensor(name, array, datatype_of(array)))
        return result


def _cast(data: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    if data.dtype == dtype:
        return data
    if dtype.kind == "O":
        return np.array(
            [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in data.ravel()
            ],
            dtype=object,
        ).reshape(data.shape)
    try:
        return data.astype(dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequest(f"cannot convert input to {dtype}: {exc}") from exc
