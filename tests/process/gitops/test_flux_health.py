"""The Flux healthCheckExprs of docs/deploy-flux.md, read from the page and evaluated by
hack/fluxcel with Flux's own evaluator (fluxcd/pkg/runtime/cel, the cel-go kustomize-controller
requires), on the same fixtures as the Argo CD checks: both tools reach the same verdict for
every object, a failed Model is Failed (not InProgress until the timeout) and an object the
operator has not seen or caught up with is never Current (issue 14, item 4)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from mlkube.contract import API_VERSION
from support.gitops import (
    FLUX_FOR_ARGO,
    KINDS,
    REPO,
    flux_kustomization,
    health_cases,
    run_fluxcel,
    tool_binary,
)

DOC = REPO / "docs" / "deploy-flux.md"


@pytest.fixture(scope="module")
def fluxcel() -> Path:
    return tool_binary("fluxcel", "MLKUBE_FLUXCEL_BIN")


@pytest.fixture(scope="module")
def kustomization(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flux") / "kustomization.yaml"
    path.write_text(yaml.safe_dump(flux_kustomization(DOC.read_text())))
    return path


def test_the_documented_kustomization_checks_every_kind() -> None:
    doc = flux_kustomization(DOC.read_text())
    assert doc["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert doc["spec"]["wait"] is True  # without it Flux does not wait for anything
    exprs = doc["spec"]["healthCheckExprs"]
    assert [(e["apiVersion"], e["kind"]) for e in exprs] == [(API_VERSION, k) for k in KINDS]
    assert all({"current", "failed", "inProgress"} <= set(e) for e in exprs)


@pytest.mark.parametrize("kind", KINDS)
def test_flux_agrees_with_argocd_on_every_fixture(
    fluxcel: Path, kustomization: Path, kind: str
) -> None:
    cases = health_cases(kind)
    results = run_fluxcel(fluxcel, kustomization, [path for path, _ in cases])
    for (path, argo), result in zip(cases, results, strict=True):
        if path.stem == "missing-status":
            # Flux's CEL cannot test for a missing top-level `status`: the evaluator errs, and
            # kustomize-controller keeps waiting on an errored (Unknown) object as InProgress.
            assert "no such attribute(s): status." in result["error"], result
            assert "status" not in result
            continue
        want = FLUX_FOR_ARGO[argo["status"]]
        assert result.get("status") == want, (path.name, argo, result)
        assert "error" not in result, (path.name, result)
        if path.stem == "stale-generation":
            # Only Flux's own observedGeneration check (int64, as read from the API) says so:
            # the expressions alone would call the Ready status Current.
            assert argo["status"] == "Progressing"


def test_a_broken_expression_is_refused_like_flux_refuses_it(fluxcel: Path, tmp_path: Path) -> None:
    doc = flux_kustomization(DOC.read_text())
    doc["spec"]["healthCheckExprs"][0]["failed"] = "status.phase =="
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc))
    fixture = health_cases("Model")[0][0]
    run = subprocess.run([str(fluxcel), str(broken), str(fixture)], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 2
    assert "failed to parse the expression Failed" in run.stderr
