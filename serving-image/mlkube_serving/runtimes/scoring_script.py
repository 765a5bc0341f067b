"""Azure ML scoring scripts: `init()` once, then `run(raw_data: str)` per request.

Users migrating from Azure ML keep their `score.py`. As on Azure ML, `AZUREML_MODEL_DIR` points
at the model directory before `init()` runs, and `run` receives the raw JSON request body. V2,
V1 and Seldon requests are handed to `run` as `{"data": [...rows...]}`, the shape most Azure ML
samples expect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mlkube.contract import ENV_ENTRYPOINT
from mlkube_serving.errors import InferenceError, ModelLoadError
from mlkube_serving.runtimes.base import ModelRuntime, model_dir_of
from mlkube_serving.runtimes.usercode import import_file
from mlkube_serving.tensors import Tensor, make_tensor, to_feature_matrix

DEFAULT_SCRIPT = "score.py"
ENV_AZUREML_MODEL_DIR = "AZUREML_MODEL_DIR"


def result_tensor(name: str, result: Any) -> Tensor:
    """Make a tensor from whatever `run` returned; non-array results become one JSON string."""
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return make_tensor(name, np.array([result.encode()], dtype=object))
    try:
        tensor = make_tensor(name, result)
        flat = tensor.data.ravel()
        if tensor.data.dtype.kind != "O" or all(isinstance(v, str | bytes) for v in flat):
            return tensor
    except (ValueError, TypeError):
        pass
    text = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
    return make_tensor(name, np.array([text], dtype=object))


class ScoringScriptRuntime(ModelRuntime):
    """Runs an Azure ML style `score.py` found next to the model or named by MLKUBE_ENTRYPOINT."""

    framework = "scoring_script"
    inline_safe = False

    def __init__(self, model_path: str, entrypoint: str | None = None) -> None:
        super().__init__(model_path)
        self.active_runtime = "python"
        self._entrypoint = entrypoint or os.environ.get(ENV_ENTRYPOINT) or DEFAULT_SCRIPT
        self._run: Callable[[str], Any] | None = None

    def load(self) -> None:
        model_dir = model_dir_of(self.model_path)
        script = Path(self._entrypoint)
        if not script.is_absolute():
            script = Path(model_dir) / script
        os.environ[ENV_AZUREML_MODEL_DIR] = model_dir
        module = import_file(script, f"mlkube_user_score_{abs(hash(str(script)))}")
        run = getattr(module, "run", None)
        if not callable(run):
            raise ModelLoadError(f"{script} defines no run(raw_data) function")
        init = getattr(module, "init", None)
        if callable(init):
            try:
                init()
            except Exception as exc:
                raise ModelLoadError(f"init() in {script} failed: {exc!r}") from exc
        self._run = run
        self.runtime_note = f"Azure ML scoring script {script.name}"

    def run_raw(self, raw_data: str) -> Any:
        """Call `run` with a raw request body, as Azure ML's /score does."""
        assert self._run is not None, "load() first"
        try:
            return self._run(raw_data)
        except Exception as exc:
            raise InferenceError(f"run() raised {exc!r}") from exc

    def predict(self, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> list[Tensor]:
        data = inputs[0].data if len(inputs) == 1 else to_feature_matrix(inputs)
        raw = orjson.dumps({"data": data}, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain)
        return [result_tensor("predict", self.run_raw(raw.decode()))]


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot serialize {type(value).__name__}")
