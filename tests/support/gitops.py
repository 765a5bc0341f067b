"""The GitOps health tools, built from the Go module proxy like helm: `argolua` runs Argo CD
Lua health checks as Argo CD does, `fluxcel` runs Flux's own CEL status evaluator. A missing
tool is built here (or fails the test loudly), never skipped."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "charts" / "mlkube" / "argocd"
CUSTOMIZATIONS = ARGOCD / "resource_customizations"
KINDS = (
    "Model", "OnlineEndpoint", "BatchEndpoint", "BatchJob", "Pipeline", "PipelineRun", "EventSink",
    "Environment",
)  # fmt: skip
# Argo CD health -> kstatus (what Flux computes) for the same object: docs/deploy-flux.md.
FLUX_FOR_ARGO = {
    "Healthy": "Current",
    "Suspended": "Current",
    "Degraded": "Failed",
    "Progressing": "InProgress",
}


def tool_binary(name: str, env: str) -> Path:
    """`env` (make test sets it), else build or reuse the cached build of hack/<name>."""
    override = os.environ.get(env)
    if override:
        return Path(override)
    out = subprocess.run(["bash", str(REPO / "hack" / name / "build.sh")],
                         stdout=subprocess.PIPE, text=True, check=True)  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def health_cases(kind: str) -> list[tuple[Path, dict[str, str]]]:
    """(fixture, expected Argo CD health) for every case of the kind's health_test.yaml."""
    folder = CUSTOMIZATIONS / "mlkube.dev" / kind
    tests = yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]
    return [(folder / t["inputPath"], t["healthStatus"]) for t in tests]


def run_argolua(argolua: Path, script: Path, objects: list[Path]) -> list[dict[str, Any]]:
    run = subprocess.run([str(argolua), "run", str(script), *map(str, objects)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    results = json_lines(run.stdout)
    assert len(results) == len(objects), run.stderr
    return results


def run_argolua_cm(argolua: Path, configmap: Path, objects: list[Path]) -> list[dict[str, Any]]:
    """Each object with the script argocd-cm holds for its group/kind, as Argo CD picks it."""
    run = subprocess.run([str(argolua), "cm", str(configmap), *map(str, objects)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    results = json_lines(run.stdout)
    assert len(results) == len(objects), run.stderr
    return results


def run_fluxcel(fluxcel: Path, kustomization: Path, objects: list[Path]) -> list[dict[str, Any]]:
    run = subprocess.run([str(fluxcel), str(kustomization), *map(str, objects)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    results = json_lines(run.stdout)
    assert len(results) == len(objects), run.stderr
    return results


def flux_kustomization(markdown: str) -> dict[str, Any]:
    """The Kustomization in docs/deploy-flux.md (the first yaml block of that kind)."""
    for block in markdown.split("```yaml")[1:]:
        doc = yaml.safe_load(block.split("```", 1)[0])
        if isinstance(doc, dict) and doc.get("kind") == "Kustomization":
            return doc
    raise AssertionError("docs/deploy-flux.md shows no Kustomization")
