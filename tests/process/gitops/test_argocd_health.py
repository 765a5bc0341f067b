"""The Argo CD health checks shipped in charts/mlkube/argocd, run by hack/argolua the way Argo CD
runs them (gopher-lua, argocd-cm's closed libraries): every fixture gets the health its
health_test.yaml promises, the fixtures are real mlkube objects, and the argocd-cm keys and the
Helm values in docs/deploy-argocd.md carry exactly these scripts (issue 14, item 4)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from mlkube.api.kinds import parse_object
from support.gitops import (
    ARGOCD,
    CUSTOMIZATIONS,
    KINDS,
    REPO,
    health_cases,
    json_lines,
    run_argolua,
    run_argolua_cm,
    tool_binary,
)
from support.helm import CHART, helm_binary, helm_env

DOC = REPO / "docs" / "deploy-argocd.md"


@pytest.fixture(scope="module")
def argolua() -> Path:
    return tool_binary("argolua", "MLKUBE_ARGOLUA_BIN")


def test_every_health_test_case_gets_its_health(argolua: Path) -> None:
    run = subprocess.run([str(argolua), "test", str(CUSTOMIZATIONS)],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    results = json_lines(run.stdout)
    failed = [r for r in results if not r["ok"]]
    assert run.returncode == 0 and not failed, failed or run.stderr
    assert len(results) == sum(len(health_cases(kind)) for kind in KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_a_check_and_covers_its_states(kind: str) -> None:
    assert (CUSTOMIZATIONS / "mlkube.dev" / kind / "health.lua").is_file()
    cases = {path.stem: want["status"] for path, want in health_cases(kind)}
    assert {"Healthy", "Progressing", "Degraded"} <= set(cases.values())
    # An object the operator has not seen yet, or has not caught up with, is never Healthy.
    assert cases["missing-status"] == "Progressing"
    assert cases["stale-generation"] == "Progressing"
    if kind == "BatchJob":
        assert cases["suspended"] == "Suspended"
        assert cases["cancelled"] == "Degraded"


@pytest.mark.parametrize("kind", KINDS)
def test_fixtures_are_valid_objects_of_their_kind(kind: str) -> None:
    for path, _ in health_cases(kind):
        obj = yaml.safe_load(path.read_text())
        assert obj["kind"] == kind
        parse_object(obj)  # spec and status against the kind's pydantic models (the CRD's source)


def test_argocd_cm_carries_exactly_the_scripts() -> None:
    check = subprocess.run([str(REPO / "hack" / "argolua" / "argocd-cm"), "--check"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    # Argo CD's settings informer only sees ConfigMaps with this label.
    assert cm["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    assert cm["data"] == {
        f"resource.customizations.health.mlkube.dev_{kind}": (
            CUSTOMIZATIONS / "mlkube.dev" / kind / "health.lua"
        ).read_text()
        for kind in KINDS
    }


def test_documented_helm_values_name_each_kind_and_its_script() -> None:
    block = DOC.read_text().split("```sh\nhelm upgrade argocd", 1)[1].split("```", 1)[0]
    pairs = re.findall(r"--set-file '([^=]+)=([^']+)'", block)
    keys = {key.replace("\\.", "."): Path(path) for key, path in pairs}
    assert set(keys) == {f"configs.cm.resource.customizations.health.mlkube.dev_{k}" for k in KINDS}
    for key, path in keys.items():
        kind = key.rsplit("_", 1)[1]
        assert path == Path("charts/mlkube/argocd/resource_customizations/mlkube.dev") / kind / (
            "health.lua"
        )
        assert (REPO / path).is_file()


def test_scripts_use_only_what_argocd_cm_scripts_get(argolua: Path, tmp_path: Path) -> None:
    """The runner is as strict as Argo CD: no string library for argocd-cm scripts, a status
    outside Argo CD's set becomes Unknown, and a wrong expectation fails `argolua test`."""
    fixture = health_cases("Model")[0][0]
    uses_string = tmp_path / "string.lua"
    uses_string.write_text('return {status = string.format("%s", "Healthy")}\n')
    [result] = run_argolua(argolua, uses_string, [fixture])
    # `string` is nil there: indexing it fails (open libraries would have let it pass).
    assert "argocd-cm's libraries" in result["error"]
    assert "key 'format'" in result["error"]
    invalid = tmp_path / "invalid.lua"
    invalid.write_text('return {status = "Fine", message = "x"}\n')
    [result] = run_argolua(argolua, invalid, [fixture])
    assert result["got"] == {
        "status": "Unknown",
        "message": "Lua returned an invalid health status",
    }
    tree = tmp_path / "resource_customizations"
    shutil.copytree(CUSTOMIZATIONS, tree)
    tests = tree / "mlkube.dev" / "Model" / "health_test.yaml"
    tests.write_text(tests.read_text().replace("status: Degraded", "status: Healthy", 1))
    run = subprocess.run([str(argolua), "test", str(tree)], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    assert run.returncode == 1
    assert [r["case"] for r in json_lines(run.stdout) if not r["ok"]] == [
        "mlkube.dev/Model/testdata/failed.yaml"
    ]


def test_the_packaged_chart_ships_the_checks(tmp_path: Path) -> None:
    """`helm package` (the real helm) keeps charts/mlkube/argocd, so users of a packaged chart
    get the scripts and the argocd-cm keys (`helm pull mlkube --untar`)."""
    helm = helm_binary()
    run = subprocess.run([str(helm), "package", str(CHART), "-d", str(tmp_path)],
                         capture_output=True, text=True, env=helm_env(), timeout=120,
                         check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    [package] = tmp_path.glob("mlkube-*.tgz")
    with tarfile.open(package) as tar:
        names = set(tar.getnames())
    assert "mlkube/argocd/argocd-cm.yaml" in names
    for kind in KINDS:
        folder = f"mlkube/argocd/resource_customizations/mlkube.dev/{kind}"
        assert {f"{folder}/health.lua", f"{folder}/health_test.yaml"} <= names


def test_argocd_picks_each_kinds_script_from_the_configmap(argolua: Path, tmp_path: Path) -> None:
    """argocd-cm.yaml read as Argo CD's settings manager reads it (key -> group/kind): every
    fixture gets its expected health; a misspelt key leaves the kind without a check."""
    cases = [case for kind in KINDS for case in health_cases(kind)]
    results = run_argolua_cm(argolua, ARGOCD / "argocd-cm.yaml", [path for path, _ in cases])
    assert [r.get("got") for r in results] == [want for _, want in cases]
    typo = tmp_path / "argocd-cm.yaml"
    typo.write_text((ARGOCD / "argocd-cm.yaml").read_text().replace("dev_Model", "dev.Model"))
    [result] = run_argolua_cm(argolua, typo, [health_cases("Model")[0][0]])
    assert result["error"] == "no health check for mlkube.dev/Model"
