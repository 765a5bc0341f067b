"""mlkube.oci and mlkube.envbuild import only the standard library (and each other): the build
pod copies them into base images that have nothing but Python. fetch_model is the one
exception (it runs in the tools image and reuses mlkube.storage)."""

import ast
import sys
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[3] / "operator" / "mlkube"
ALLOWED_OWN = ("mlkube.oci", "mlkube.envbuild")
EXCEPTIONS = {"fetch_model.py": ("mlkube.storage",)}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_build_tools_are_stdlib_only() -> None:
    files = [
        *sorted((PACKAGES / "oci").glob("*.py")),
        *sorted((PACKAGES / "envbuild").glob("*.py")),
    ]
    assert len(files) > 15
    offenders = []
    for path in files:
        allowed = (*ALLOWED_OWN, *EXCEPTIONS.get(path.name, ()))
        for name in imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or name == "mlkube" or name.startswith(allowed):
                continue
            offenders.append(f"{path.name}: {name}")
    assert offenders == []
