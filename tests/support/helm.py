"""The real helm CLI (hack/helm/build.sh, from the Go module proxy) rendering the real chart."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mlkube"
# What a render without a cluster assumes (the test control plane's version): a helm built from
# the module proxy without release ldflags would assume v1.20, below the chart's kubeVersion.
KUBE_VERSION = "1.36.3"


def helm_binary() -> Path:
    """MLKUBE_HELM_BIN (make test sets it), else build or reuse the cached build."""
    override = os.environ.get("MLKUBE_HELM_BIN")
    if override:
        return Path(override)
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "helm" / "build.sh")],
        stdout=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def helm_unittest_plugins() -> Path:
    """A helm plugins directory holding helm-unittest: MLKUBE_HELM_UNITTEST_PLUGINS (make test
    sets it), else build or reuse the cached build (hack/helm-unittest/build.sh)."""
    override = os.environ.get("MLKUBE_HELM_UNITTEST_PLUGINS")
    if override:
        return Path(override)
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "helm-unittest" / "build.sh")],
        stdout=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def helm_env() -> dict[str, str]:
    """helm keeps caches and config under these; never in the user's home."""
    return {**os.environ, "HELM_CACHE_HOME": "/tmp/mlkube-helm/cache",
            "HELM_CONFIG_HOME": "/tmp/mlkube-helm/config",
            "HELM_DATA_HOME": "/tmp/mlkube-helm/data"}  # fmt: skip


def lint_chart(helm: Path, values: list[str] = ()) -> str:  # type: ignore[assignment]
    argv = [str(helm), "lint", "--strict", str(CHART)]
    for value in values:
        argv += ["--set", value]
    out = subprocess.run(argv, capture_output=True, text=True, env=helm_env(), check=False)
    if out.returncode != 0:
        raise AssertionError(f"helm lint failed: {out.stdout}{out.stderr}")
    return out.stdout


def render_chart(
    helm: Path,
    namespace: str,
    values: list[str] = (),  # type: ignore[assignment]
    *,
    kubeconfig: Path | None = None,
    release: str = "mlkube",
) -> list[dict[str, Any]]:
    """`helm template` of the chart: every object (the CRDs too, unless crds.install=false).
    With a kubeconfig the render runs with `--dry-run=server`, so `lookup` sees the cluster (as
    install and upgrade do)."""
    argv = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    for value in values:
        argv += ["--set", value]
    env = helm_env()
    argv += ["--kube-version", KUBE_VERSION]  # `helm template` never asks the server
    if kubeconfig is not None:
        argv += ["--dry-run=server", "--kubeconfig", str(kubeconfig)]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise AssertionError(f"helm template failed: {out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]
