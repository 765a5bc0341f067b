"""The Environment's status contract (docs/status.md) judged by the real kstatus library
(hack/kstatus: what Flux, Helm 4 --wait and kpt compute) on the same fixtures as the Argo CD
and Flux checks: all three tools reach the same verdict for every Environment state, so a
build that cannot proceed fails a GitOps sync at once and a fresh object is never Current."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mlkube.api.kinds import parse_object
from support.gitops import FLUX_FOR_ARGO, health_cases
from support.kstatus import compute

CASES = health_cases("Environment")


@pytest.mark.parametrize(("path", "argo"), CASES, ids=[p.stem for p, _ in CASES])
def test_kstatus_agrees_with_argocd_and_flux(path: Path, argo: dict[str, str]) -> None:
    obj = yaml.safe_load(path.read_text())
    parse_object(obj)  # a real Environment, status included
    live = copy.deepcopy(obj)
    # What the API server returns for an object the operator has not seen (the CRD default).
    live.setdefault("status", {"observedGeneration": 0})
    result = compute(live)
    assert result["status"] == FLUX_FOR_ARGO[argo["status"]], (path, result)


def test_the_fixtures_cover_every_verdict() -> None:
    assert {argo["status"] for _, argo in CASES} == {"Progressing", "Healthy", "Degraded"}
