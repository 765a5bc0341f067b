"""Convert a scikit-learn model to ONNX (or, for a linear model, its numpy parameters) once per
scorer process tree, not once per worker.

The conversion (unpickle, skl2onnx, the parity check against scikit-learn) is the largest fixed
cost of a score pod: ~1.3 s for a 100-tree forest, most of it importing scikit-learn. The
parent does it once, while its freshly spawned workers import pandas, pyarrow and onnxruntime,
and writes the checked ONNX model and what the runtime needs to serve it into a private scratch
folder; workers (and any replacement of a killed one) then build the runtime from it without
importing scikit-learn. A model that is not scikit-learn, or whose conversion did not hold
parity, is loaded by each worker as before (`prepare` returns None).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
ONNX = "model.onnx"
META = "model.json"


def is_sklearn(model_path: str, framework: str | None) -> bool:
    """Whether the workers' runtime would be sklearn: the same choice as create_runtime."""
    from mlkube_serving.runtimes import resolve_framework

    try:
        return resolve_framework(model_path, framework) == "sklearn"
    except Exception:  # the workers report an unusable model themselves
        return False


def prepare(model_path: str, framework: str | None, entrypoint: str | None, folder: str) -> str:
    """Write the conversion into `folder`; its path, or "" when workers must load the model."""
    from mlkube_serving.acceleration import acceleration_enabled

    if entrypoint or not acceleration_enabled() or not is_sklearn(model_path, framework):
        return ""
    from mlkube_serving.runtimes.sklearn import SklearnRuntime

    try:
        runtime = SklearnRuntime(model_path)
        runtime.load()
        exported = runtime.export_accelerated()
        if exported is None:
            return ""
        onnx_bytes, meta = exported
        meta_bytes = json.dumps(meta).encode()
    except Exception as exc:  # a worker loading it itself reports the real error (exit 43)
        log.info("no shared ONNX conversion (%s); workers load the model themselves", exc)
        return ""
    target = Path(folder)
    if onnx_bytes:  # a linear model exports its parameters in the metadata alone
        (target / ONNX).write_bytes(onnx_bytes)
    (target / META).write_bytes(meta_bytes)
    return str(target)


def load(model_path: str, folder: str) -> Any:
    """The runtime over a prepared conversion (scikit-learn is not imported)."""
    from mlkube_serving.runtimes.sklearn import SklearnRuntime

    meta: dict[str, Any] = json.loads(Path(os.path.join(folder, META)).read_bytes())
    onnx_path = Path(os.path.join(folder, ONNX))
    onnx_bytes = onnx_path.read_bytes() if onnx_path.exists() else b""
    return SklearnRuntime.from_accelerated(model_path, onnx_bytes, meta)
