"""Packaging guarantees: stdlib `operator` is not shadowed; the operator stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("onnxruntime", "sklearn", "skl2onnx", "numpy", "pyarrow", "pandas", "mlkube_serving")


def test_operator_dir_is_a_source_root_not_a_package() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()
    assert (REPO / "operator" / "mlkube" / "__init__.py").exists()


def test_stdlib_operator_is_not_shadowed() -> None:
    code = "import operator, json; print(json.dumps([operator.__file__, operator.add(2, 3)]))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    path, total = json.loads(out.stdout)
    assert total == 5
    assert "/operator/" not in path.replace(str(REPO), "")
    assert not path.startswith(str(REPO))


def test_importing_the_operator_pulls_in_no_data_plane_library() -> None:
    code = (
        "import sys, json; import mlkube.handlers.main, mlkube.cli.main; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def test_contract_labels_are_spelled_once() -> None:
    """A batch label (C1's and the others) is defined in mlkube.contract only: a copy
    elsewhere (e.g. the CLI's selector) would silently stop matching the day it changes."""
    from mlkube import contract

    values = {
        value
        for name, value in vars(contract).items()
        if name.startswith("LABEL_BATCH_") and isinstance(value, str)
    }
    assert {"mlkube.dev/batch-job", "mlkube.dev/batch-step"} <= values
    copies = [
        f"{path.relative_to(REPO)}: {value}"
        for root in ("operator/mlkube", "serving-image/mlkube_serving")
        for path in sorted((REPO / root).rglob("*.py"))
        if path.name != "contract.py"
        for value in values
        if f'"{value}"' in path.read_text() or f"'{value}'" in path.read_text()
    ]
    assert copies == []
