"""`helm install --wait` with Helm 4, whose wait computes kstatus on every object: a release
holding a Model finishes when the operator has verified it, fails fast (not at the timeout)
when verification fails for good, and does not finish before the operator has seen the Model
(the CRD's status default makes an unseen Model InProgress, not Current)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import yaml

from mlkube.devcluster import Cluster
from support.endpoints import make_artifact, model_object
from support.helm4 import helm4_binary, helm4_env
from support.operator import run_operator

WRONG_DIGEST = "sha256:" + "0" * 64
TIMEOUT = 90  # what --wait would wait at most; the failure must come long before it


def write_chart(
    folder: Path, namespace: str, uri: str, digest: str | None, name: str = "credit-risk"
) -> Path:
    """A user's chart: one Model (the CRDs are installed already, as the mlkube chart does)."""
    model = model_object(name, namespace, uri, "1")
    if digest:
        model["spec"]["artifact"]["digest"] = digest
    (folder / "templates").mkdir(parents=True)
    (folder / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": "scoring", "version": "0.1.0"})
    )
    (folder / "templates" / "model.yaml").write_text(yaml.safe_dump(model))
    return folder


def install(
    cluster: Cluster, chart: Path, release: str, namespace: str, timeout: int
) -> tuple[subprocess.CompletedProcess[str], float]:
    argv = [
        str(helm4_binary()), "install", release, str(chart), "--namespace", namespace,
        "--kubeconfig", str(cluster.kubeconfig), "--wait", "--timeout", f"{timeout}s",
    ]  # fmt: skip
    started = time.monotonic()
    out = subprocess.run(
        argv, capture_output=True, text=True, env=helm4_env(chart.parent / "helm"),
        check=False, timeout=timeout + 60,
    )  # fmt: skip
    return out, time.monotonic() - started


def test_helm4_version_is_the_pinned_one(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(helm4_binary()), "version", "--short"], capture_output=True, text=True,
        env=helm4_env(tmp_path), check=True,
    )  # fmt: skip
    assert out.stdout.startswith("v4.3.2"), out.stdout


def test_install_wait_ends_when_the_model_is_ready(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    chart = write_chart(tmp_path / "chart", namespace, make_artifact(tmp_path / "a", "a"), None)
    # No operator: the Model is never verified, so --wait must not report success.
    out, _ = install(cluster, chart, "unseen", namespace, timeout=8)
    assert out.returncode != 0, out.stdout
    assert "credit-risk not ready. status: InProgress" in out.stderr, out.stderr
    assert "generation is 1, but latest observed generation is 0" in out.stderr, out.stderr
    with run_operator(namespace):
        uri = make_artifact(tmp_path / "b", "b")
        chart2 = write_chart(tmp_path / "chart2", namespace, uri, None, name="ok")
        out, took = install(cluster, chart2, "ready", namespace, timeout=TIMEOUT)
    print(f"\nhelm 4 install --wait of a Model: done in {took:.1f}s")
    assert out.returncode == 0, out.stderr
    assert took < 30, took


def test_install_wait_fails_fast_when_the_model_fails(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    uri = make_artifact(tmp_path / "a", "a")
    chart = write_chart(tmp_path / "chart", namespace, uri, WRONG_DIGEST)
    with run_operator(namespace):
        out, took = install(cluster, chart, "broken", namespace, timeout=TIMEOUT)
    print(f"\nhelm 4 install --wait of a failing Model: failed in {took:.1f}s (timeout {TIMEOUT}s)")
    print(out.stderr.strip())
    assert out.returncode != 0, out.stdout
    assert "status: Failed" in out.stderr, out.stderr
    assert "Model" in out.stderr and "credit-risk" in out.stderr, out.stderr
    assert took < 30, took
