"""The real kstatus library (hack/kstatus: sigs.k8s.io/cli-utils status.Compute, what Flux,
Helm 4 --wait and kpt run) judging objects, so tests do not re-implement its rules."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def kstatus_binary() -> Path:
    """MLKUBE_KSTATUS_BIN (make test sets it), else build or reuse the cached build; a
    missing tool fails the test, it never skips it."""
    override = os.environ.get("MLKUBE_KSTATUS_BIN")
    if override:
        return Path(override)
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "kstatus" / "build.sh")],
        stdout=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def compute(obj: dict[str, Any]) -> dict[str, Any]:
    """kstatus's verdict on one object: status (InProgress, Current, Failed, Terminating...),
    message and conditions."""
    out = subprocess.run(
        [str(kstatus_binary())], input=json.dumps(obj), capture_output=True, text=True,
        check=False, timeout=30,
    )  # fmt: skip
    if out.returncode != 0:
        raise AssertionError(f"kstatus failed: {out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result
