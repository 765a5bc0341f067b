"""Helm 4 (hack/helm4/build.sh, from the Go module proxy): its `--wait` watches kstatus."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def helm4_binary() -> Path:
    """MLKUBE_HELM4_BIN (make test sets it), else build or reuse the cached build."""
    override = os.environ.get("MLKUBE_HELM4_BIN")
    if override:
        return Path(override)
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "helm4" / "build.sh")],
        stdout=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def helm4_env(home: Path) -> dict[str, str]:
    """Caches and config under `home`, never the user's."""
    return {**os.environ, "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data")}  # fmt: skip
