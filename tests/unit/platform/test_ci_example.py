"""The GitHub Actions workflow users copy (examples/ci/github-actions, docs/ci-cd.md): checked by
the real actionlint (hack/actionlint/build.sh, pinned Go module), its `mlkube` commands parsed
by the real CLI parser, and its manifest-update step run for real on the example manifest."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.cli.main import build_parser
from mlkube.contract import GROUP

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "ci" / "github-actions"
WORKFLOW = EXAMPLES / "train-register-deploy.yml"
MANIFEST = "deploy/credit/onlineendpoint.yaml"


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """MLKUBE_ACTIONLINT_BIN (make test sets it), else build or reuse the cached build."""
    override = os.environ.get("MLKUBE_ACTIONLINT_BIN")
    if override:
        path = Path(override)
    else:
        out = subprocess.run(["bash", str(REPO / "hack" / "actionlint" / "build.sh")],
                             stdout=subprocess.PIPE, text=True, check=True)  # fmt: skip
        path = Path(out.stdout.strip().splitlines()[-1])
    assert os.access(path, os.X_OK), f"actionlint missing at {path}: run hack/actionlint/build.sh"
    return path


def lint(actionlint: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    # No shellcheck/pyflakes on PATH: the run: scripts are exercised below instead.
    argv = [str(actionlint), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, files)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def workflow() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return doc


def step(job: str, step_id: str) -> dict[str, Any]:
    (found,) = [s for s in workflow()["jobs"][job]["steps"] if s.get("id") == step_id]
    return found


def test_actionlint_passes_every_example(actionlint: Path) -> None:
    files = sorted(EXAMPLES.glob("*.yml"))
    assert WORKFLOW in files
    done = lint(actionlint, *files)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        # A job-level env may not read the runner context (the first draft did).
        ("    steps:\n      - uses: actions/download-artifact",
         "    env:\n      KUBECONFIG: ${{ runner.temp }}/kubeconfig\n"
         "    steps:\n      - uses: actions/download-artifact",
         'context "runner" is not allowed here'),
        ("needs.register.outputs.model", "needs.register.outputs.modle", "modle"),
        ("needs: register", "needs: registr", "registr"),
    ],
)  # fmt: skip
def test_actionlint_is_not_lenient(actionlint: Path, tmp_path: Path, old: str, new: str,
                                   complaint: str) -> None:  # fmt: skip
    text = WORKFLOW.read_text()
    assert old in text
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace(old, new, 1))
    done = lint(actionlint, broken)
    assert done.returncode == 1 and complaint in done.stdout, done.stdout + done.stderr


def test_train_then_register_then_deploy() -> None:
    jobs = workflow()["jobs"]
    assert list(jobs) == ["train", "register", "deploy"]
    assert jobs["register"]["needs"] == "train" and jobs["deploy"]["needs"] == "register"
    assert jobs["register"]["permissions"]["id-token"] == "write"
    assert jobs["deploy"]["permissions"] == {"contents": "write"}
    assert workflow()["permissions"] == {"contents": "read"}
    # The deploy commit touches deploy/**, which must not trigger the workflow again.
    paths = workflow()[True]["push"]["paths"]  # `on` is YAML 1.1's True
    assert not any(p.startswith("deploy") for p in paths)


def mlkube_commands() -> list[list[str]]:
    """Every `mlkube ...` command in a run: script, variables replaced by sample values."""
    values = {
        "NAMESPACE": "ml", "MODEL_NAME": "credit-risk", "VERSION": "12",
        "GITHUB_SHA": "0123abc", "GITHUB_RUN_ID": "99", "GITHUB_REPOSITORY": "acme/ml",
    }  # fmt: skip
    commands = []
    for job in workflow()["jobs"].values():
        for s in job["steps"]:
            script = s.get("run", "").replace("\\\n", " ")
            for match in re.finditer(r"\bmlkube (model|endpoint|batch) [^\n)]*", script):
                text = re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], match.group(0))
                commands.append(shlex.split(text)[1:])
    return commands


def test_the_mlkube_commands_parse_with_the_real_cli() -> None:
    commands = mlkube_commands()
    assert [c[:2] for c in commands] == [["model", "profile"], ["model", "register"]]
    # `model profile` parses its own arguments (data-plane code, imported lazily by main).
    from mlkube_serving.drift.cli import _parser as profile_parser

    profile = profile_parser().parse_args(commands[0][2:])
    assert profile.data == "training/data/train.csv"
    parser = build_parser()
    assert profile.out == "build/baseline.json" and profile.model == "build/model.pkl"
    register = parser.parse_args(commands[1])
    assert (register.name, register.version, register.namespace) == ("credit-risk", "12", "ml")
    assert register.path == "build/model.pkl" and register.baseline == profile.out


def test_the_model_name_is_read_from_the_register_output() -> None:
    script = step("register", "register")["run"]
    (sed,) = [line for line in script.splitlines() if "sed -n" in line]
    sed_argv = shlex.split(sed.split("| ", 1)[1].rstrip(")"))
    printed = f"model.{GROUP}/credit-risk-v12 created in namespace ml\n  artifact: s3://x\n"
    done = subprocess.run(sed_argv, input=printed, capture_output=True, text=True, check=True)
    assert done.stdout == "credit-risk-v12\n"


def run_update(tmp_path: Path, deployment: str, model: str) -> subprocess.CompletedProcess[str]:
    target = tmp_path / MANIFEST
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / MANIFEST, target)
    env = {"PATH": os.environ["PATH"], "ENDPOINT_MANIFEST": MANIFEST,
           "DEPLOYMENT": deployment, "MODEL": model}  # fmt: skip
    script = step("deploy", "update-manifest")["run"]
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_the_update_step_points_one_deployment_at_the_model(tmp_path: Path) -> None:
    before = yaml.safe_load((EXAMPLES / MANIFEST).read_text())
    OnlineEndpointSpec.model_validate(before["spec"])
    done = run_update(tmp_path, "green", "credit-risk-v12")
    assert done.returncode == 0, done.stderr
    after = yaml.safe_load((tmp_path / MANIFEST).read_text())
    OnlineEndpointSpec.model_validate(after["spec"])
    models = {d["name"]: d["model"] for d in after["spec"]["deployments"]}
    assert models == {"blue": "credit-risk-v3", "green": "credit-risk-v12"}
    after["spec"]["deployments"][1]["model"] = "credit-risk-v4"
    assert after == before  # nothing else changed


def test_the_update_step_refuses_an_unknown_deployment(tmp_path: Path) -> None:
    done = run_update(tmp_path, "purple", "credit-risk-v12")
    assert done.returncode != 0 and "no deployment 'purple'" in done.stderr
    assert (tmp_path / MANIFEST).read_text() == (EXAMPLES / MANIFEST).read_text()
