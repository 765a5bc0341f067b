"""What scores a mini-batch: a shared online runtime in large chunks, or an Azure ML script.

Model runtimes (sklearn with automatic ONNX acceleration, ONNX, MLflow) are the online ones,
so batch and online predictions of one Model agree; they get the mini-batch in chunks of
`chunk_rows` (one call per chunk amortizes per-call overhead, the bound keeps memory flat).
Scoring scripts follow Azure ML's batch contract: `init()` once per process, then
`run(mini_batch)` with a list of local file paths (files mode) or a DataFrame (rows mode);
fewer results than inputs, or an exception, fails the whole mini-batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlkube.contract import ENV_ENTRYPOINT
from mlkube_serving.batch.reader import chunks
from mlkube_serving.runtimes import create_runtime, detect_framework
from mlkube_serving.runtimes.base import ModelRuntime, model_dir_of
from mlkube_serving.runtimes.scoring_script import DEFAULT_SCRIPT, ENV_AZUREML_MODEL_DIR
from mlkube_serving.runtimes.usercode import import_file
from mlkube_serving.tensors import make_tensor

CHUNK_ROWS = 65_536
PREDICTION = "prediction"


class MiniBatchFailed(RuntimeError):
    """The mini-batch as a whole failed (retried, then all its items count as failed).

    `retryable` is False when the same input would fail the same way (it cannot be parsed, or
    the model refuses its shape or types): retrying would only delay the job.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ModelScorer:
    """A shared runtime over DataFrames: one prediction per row, in row order."""

    tabular = True

    def __init__(self, runtime: ModelRuntime, chunk_rows: int = CHUNK_ROWS) -> None:
        self.runtime = runtime
        self.chunk_rows = chunk_rows

    def columns(self, frame: pd.DataFrame) -> list[Any]:
        """The model's columns by name when the frame has them all, else all columns in order."""
        names = self.runtime.feature_names
        if names and all(n in frame.columns for n in names):
            return list(names)
        return list(frame.columns)

    def features(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        names = self.runtime.feature_names
        if names and all(n in frame.columns for n in names):
            frame = frame[list(names)]
        matrix: np.ndarray[Any, Any] = frame.to_numpy()
        return matrix

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        if len(frame) == 0:
            return np.empty((0,))
        parts = []
        for chunk in chunks(frame, self.chunk_rows):
            out = self.runtime.predict([make_tensor("input-0", self.features(chunk))], None)
            parts.append(np.asarray(out[0].data))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def score_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({PREDICTION: self.predict(frame)})

    def score_files(
        self, names: Sequence[str], frames: Sequence[pd.DataFrame]
    ) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
        """All files in one call; when that fails, file by file so the bad ones are named."""
        if not names:
            return pd.DataFrame({"file": [], PREDICTION: []}), []
        try:
            joined = pd.concat(frames, ignore_index=True)
            labels = np.repeat(np.asarray(names, dtype=object), [len(f) for f in frames])
            return pd.DataFrame({"file": labels, PREDICTION: self.predict(joined)}), []
        except Exception:  # find which file(s) the model refuses
            pass
        outputs, failed = [], []
        for name, frame in zip(names, frames, strict=True):
            try:
                preds = self.predict(frame)
                outputs.append(pd.DataFrame({"file": [name] * len(frame), PREDICTION: preds}))
            except Exception as exc:
                failed.append((name, f"{type(exc).__name__}: {exc}"))
        result = pd.concat(outputs, ignore_index=True) if outputs else pd.DataFrame()
        return result, failed


class ScriptScorer:
    """An Azure ML batch scoring script: `init()` at construction, `run(mini_batch)` per call
    (BatchEntrypoint initFunction/runFunction may name them otherwise)."""

    tabular = False

    def __init__(
        self, script: Path, model_dir: str, init_function: str = "init", run_function: str = "run"
    ) -> None:
        os.environ[ENV_AZUREML_MODEL_DIR] = model_dir
        module = import_file(script, f"mlkube_batch_score_{abs(hash(str(script)))}")
        run = getattr(module, run_function, None)
        if not callable(run):
            raise MiniBatchFailed(f"{script} defines no {run_function}(mini_batch) function")
        init = getattr(module, init_function, None)
        if init is None and init_function != "init":
            # A name given explicitly must exist: a typo must not skip the model load.
            raise MiniBatchFailed(f"{script} defines no {init_function}() function")
        if callable(init):
            init()
        self._run: Callable[[Any], Any] = run
        self._run_name = run_function

    def call(self, mini_batch: Any, inputs: int) -> pd.DataFrame:
        try:
            result = self._run(mini_batch)
        except Exception as exc:
            name = self._run_name
            raise MiniBatchFailed(f"{name}() raised {type(exc).__name__}: {exc}") from exc
        frame = to_frame(result)
        if len(frame) < inputs:
            raise MiniBatchFailed(
                f"{self._run_name}() returned {len(frame)} results for {inputs} inputs"
            )
        return frame


def to_frame(result: Any) -> pd.DataFrame:
    """run()'s result as rows: a DataFrame as is, anything list-like as one `result` column."""
    if isinstance(result, pd.DataFrame):
        return result
    if isinstance(result, pd.Series | np.ndarray | list | tuple):
        return pd.DataFrame({"result": list(result)})
    raise MiniBatchFailed(f"run() returned {type(result).__name__}, not a list or DataFrame")


def create_scorer(
    model_path: str,
    framework: str | None,
    entrypoint: str | None,
    init_function: str = "init",
    run_function: str = "run",
    prepared: str = "",
) -> ModelScorer | ScriptScorer:
    """A scoring script when an entrypoint is given or the model folder holds `score.py` (the
    online scoring-script runtime takes a JSON body, not a mini-batch), else the online
    runtime for the model (built from the parent's conversion when `prepared` names it)."""
    name = (framework or "").strip().lower()
    if not entrypoint and name in ("", "custom", "scoring_script", "azureml"):
        detected = name if name not in ("", "custom") else detect_framework(model_path)
        if detected in ("scoring_script", "azureml"):
            entrypoint = os.environ.get(ENV_ENTRYPOINT) or DEFAULT_SCRIPT
    if entrypoint:
        script = Path(entrypoint)
        model_dir = model_dir_of(model_path)
        path = script if script.is_absolute() else Path(model_dir) / script
        return ScriptScorer(path, model_dir, init_function, run_function)
    if prepared:  # the parent converted it once (batch/prepared.py)
        from mlkube_serving.batch import prepared as shared

        return ModelScorer(shared.load(model_path, prepared))
    runtime = create_runtime(model_path, framework)
    runtime.load()
    return ModelScorer(runtime)
