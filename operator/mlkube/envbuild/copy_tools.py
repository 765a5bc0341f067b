"""The build pod's `tools` init step: copy the build tools into the shared volume.

    python -m mlkube.envbuild.copy_tools /tools

Copies `mlkube/__init__.py`, `mlkube/envbuild/` and `mlkube/oci/` (Python files only) from
the installed package, so the base image can run `python3 /tools/mlkube/envbuild/install.py`
with nothing of ours installed, and prints the install command's script path.
"""

from __future__ import annotations

import os
import shutil
import sys

PACKAGES = ("envbuild", "oci")


def copy_tools(dest: str) -> str:
    import mlkube

    src_root = os.path.dirname(os.path.abspath(mlkube.__file__))
    root = os.path.join(dest, "mlkube")
    os.makedirs(root, exist_ok=True)
    shutil.copyfile(os.path.join(src_root, "__init__.py"), os.path.join(root, "__init__.py"))
    for package in PACKAGES:
        target = os.path.join(root, package)
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(os.path.join(src_root, package))):
            if name.endswith(".py"):
                shutil.copyfile(os.path.join(src_root, package, name), os.path.join(target, name))
    return os.path.join(root, "envbuild", "install.py")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlkube.envbuild.copy_tools DEST", file=sys.stderr)
        return 2
    print(copy_tools(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
