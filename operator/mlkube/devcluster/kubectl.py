"""A kubectl that matches the dev control plane (hack/kubectl/build.sh builds it from the same
k8s.io/kubernetes version, cached by content), linked next to `mlkube` so one PATH entry finds
both: a machine's own kubectl may be several minors older than 1.36, past the supported skew.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from mlkube.devcluster.cluster import REPO_ROOT, ClusterError

BUILD_SCRIPT = REPO_ROOT / "hack" / "kubectl" / "build.sh"


def kubectl_binary() -> Path:
    """Build (or reuse from cache) kubectl; $MLKUBE_KUBECTL_BIN names a prebuilt one."""
    override = os.environ.get("MLKUBE_KUBECTL_BIN")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise ClusterError(f"kubectl build failed (exit {result.returncode}), see above")
    return Path(result.stdout.strip().splitlines()[-1])


def tools_dir(workdir: Path) -> Path:
    """Where `mlkube` lives when it runs from a virtualenv (ours to write into), else a bin
    folder of the dev workdir: never a system directory."""
    if sys.prefix != sys.base_prefix:
        return Path(sysconfig.get_path("scripts"))
    return workdir / "bin"


def path_dirs(workdir: Path) -> list[str]:
    """PATH entries that find `mlkube` and the matching kubectl, in that order."""
    dirs = [str(Path(sysconfig.get_path("scripts"))), str(tools_dir(workdir))]
    return list(dict.fromkeys(dirs))


def link_kubectl(workdir: Path) -> Path:
    """Symlink the matching kubectl into tools_dir (replacing an older link, never a file)."""
    binary = kubectl_binary()
    target = tools_dir(workdir)
    target.mkdir(parents=True, exist_ok=True)
    link = target / "kubectl"
    if link.exists() and not link.is_symlink():
        raise ClusterError(f"{link} exists and is not ours: remove it to get kubectl {binary}")
    tmp = target / ".kubectl.new"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(binary)
    tmp.replace(link)
    return link
