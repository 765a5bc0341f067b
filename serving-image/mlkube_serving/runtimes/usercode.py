"""Import user code shipped next to a model, for the scoring-script and Seldon-class runtimes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from mlkube_serving.errors import ModelLoadError


def import_file(path: Path, module_name: str) -> ModuleType:
    """Import a Python file as a module; its directory goes on sys.path for helper imports."""
    if not path.is_file():
        raise ModelLoadError(f"entry script {path} does not exist")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ModelLoadError(f"importing {path} failed: {exc!r}") from exc
    return module
