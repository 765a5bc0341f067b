"""Running a module of this package as a script (`python3 /tools/mlkube/envbuild/install.py`).

A script's directory lands on sys.path and relative imports fail. `run_as_package` puts the
directory above the package root on sys.path instead (the root is the last directory upwards
with an `__init__.py`: `mlkube` when the tools copy the tree as-is) and runs the module by its
dotted name, so the same file works installed, from the source tree and copied alone. The
script finds this module two directories up (`mlkube/envbuild/`), whatever `-I` says.
"""

from __future__ import annotations

import importlib
import os
import sys

TOOLS_ROOT: str | None = None  # set when bootstrapped: not part of the image's sys.path


def run_as_package(file: str) -> None:
    global TOOLS_ROOT
    here = os.path.dirname(os.path.abspath(file))
    parts = [os.path.splitext(os.path.basename(file))[0]]
    root = here
    while os.path.exists(os.path.join(root, "__init__.py")):
        parts.insert(0, os.path.basename(root))
        root = os.path.dirname(root)
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        sys.path.pop(0)  # the script directory would shadow stdlib modules by sibling names
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    TOOLS_ROOT = root
    module = importlib.import_module(".".join(parts))
    sys.exit(module.main())
