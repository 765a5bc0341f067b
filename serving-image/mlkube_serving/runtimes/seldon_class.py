"""Seldon Core Python model classes: `predict(X, features_names)`, no seldon-core needed.

Seldon's convention is a file `MyModel.py` defining `class MyModel`, constructed without
arguments, with an optional `load()` and optional `class_names` naming the output columns.
`MLKUBE_ENTRYPOINT=Module.Class` picks one explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlkube.contract import ENV_ENTRYPOINT
from mlkube_serving.errors import InferenceError, ModelLoadError
from mlkube_serving.runtimes.base import ModelRuntime, model_dir_of
from mlkube_serving.runtimes.scoring_script import result_tensor
from mlkube_serving.runtimes.usercode import import_file
from mlkube_serving.tensors import Tensor, column_names, to_feature_matrix


def find_class_file(model_dir: Path, entrypoint: str | None) -> tuple[Path, str]:
    """Return the file and class name to load."""
    if entrypoint:
        if ":" in entrypoint:
            module, _, cls = entrypoint.partition(":")
            module = module.removesuffix(".py")
        else:
            module, _, cls = entrypoint.rpartition(".")
        if not module or not cls:
            raise ModelLoadError(f"entrypoint {entrypoint!r} must look like Module.Class")
        return model_dir / f"{module}.py", cls
    matches = [p for p in sorted(model_dir.glob("*.py")) if _defines_class(p, p.stem)]
    if len(matches) != 1:
        raise ModelLoadError(
            f"expected one File.py defining class File in {model_dir}, found {len(matches)}; "
            f"set {ENV_ENTRYPOINT}=Module.Class"
        )
    return matches[0], matches[0].stem


def _defines_class(path: Path, name: str) -> bool:
    try:
        return f"class {name}" in path.read_text(errors="replace")
    except OSError:
        return False


class SeldonClassRuntime(ModelRuntime):
    """Instantiates the user's class once and calls its `predict` per request."""

    framework = "seldon"
    inline_safe = False

    def __init__(self, model_path: str, entrypoint: str | None = None) -> None:
        super().__init__(model_path)
        self.active_runtime = "python"
        self._entrypoint = entrypoint or os.environ.get(ENV_ENTRYPOINT)
        self._instance: Any = None
        self.class_names: list[str] | None = None

    def load(self) -> None:
        path, class_name = find_class_file(Path(model_dir_of(self.model_path)), self._entrypoint)
        module = import_file(path, f"mlkube_user_seldon_{path.stem}")
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            raise ModelLoadError(f"{path} defines no class {class_name}")
        try:
            instance = cls()
            if callable(getattr(instance, "load", None)):
                instance.load()
        except Exception as exc:
            raise ModelLoadError(f"creating {class_name} failed: {exc!r}") from exc
        if not callable(getattr(instance, "predict", None)):
            raise ModelLoadError(f"{class_name} has no predict(X, features_names) method")
        self._instance = instance
        names = getattr(instance, "class_names", None)
        self.class_names = [str(n) for n in names] if isinstance(names, list | tuple) else None
        self.runtime_note = f"Seldon class {class_name} from {path.name}"

    def predict(self, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> list[Tensor]:
        data = inputs[0].data if len(inputs) == 1 else to_feature_matrix(inputs)
        given = inputs[0].parameters.get("feature_names") if inputs[0].parameters else None
        names = list(given) if given else column_names(inputs, None) or []
        try:
            result = self._instance.predict(data, names)
        except Exception as exc:
            raise InferenceError(f"{type(self._instance).__name__}.predict raised {exc!r}") from exc
        return [result_tensor("predict", result)]
