"""What the built image holds, seen from inside the base: packages, Python, serving contract.

Packages are listed with importlib.metadata over the layer's site directories first and the
base's sys.path after (one entry per distribution, the layer's winning), i.e. what `pip
freeze` would print inside the final image. The serving contract is checked in a child
interpreter with the layer on its path: `mlkube_serving` must import and have `__main__`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata

from mlkube.envbuild.whiteouts import canonical

_CHECK = """
import importlib.util, json
try:
    import mlkube_serving
    ok = importlib.util.find_spec("mlkube_serving.__main__") is not None
    version = getattr(mlkube_serving, "__version__", "")
    print(json.dumps({"compatible": ok, "version": version,
                      "message": "" if ok else "mlkube_serving has no __main__"}))
except Exception as exc:
    print(json.dumps({"compatible": False, "version": "",
                      "message": f"import mlkube_serving failed: {type(exc).__name__}: {exc}"}))
"""


def image_sys_path() -> list[str]:
    """The interpreter's sys.path without the copied tools (bootstrapped scripts)."""
    from mlkube.envbuild import _script

    return [p for p in sys.path if p and p != _script.TOOLS_ROOT]


def list_packages(first: list[str], hidden: set[str]) -> list[str]:
    """`name==version` for every distribution visible in the image, sorted by name."""
    seen: dict[str, str] = {}
    layer_path = list(first)
    base_path = [p for p in image_sys_path() if os.path.isdir(p)]
    for path, skip in ((layer_path, set()), (base_path, hidden)):
        for dist in metadata.distributions(path=path):
            name = dist.metadata["Name"]
            if not name:
                continue
            info_dir = os.path.abspath(str(getattr(dist, "_path", "")))
            if canonical(name) in seen or info_dir in skip:
                continue
            seen[canonical(name)] = f"{name}=={dist.version}"
    return [seen[k] for k in sorted(seen)]


def serving_check(site_dirs: list[str]) -> dict[str, object]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*site_dirs, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    try:
        result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (proc.stdout + proc.stderr).strip()[-300:]
        result = {"compatible": False, "version": "", "message": f"check crashed: {tail}"}
    return result


def python_info() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "prefix": sys.prefix,
        "sysPath": image_sys_path(),
    }
