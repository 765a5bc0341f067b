"""The README's tour, the lines `make dev` prints and docs/online-endpoints.md's block run
verbatim from a fresh shell (issue 18; issue 9 A2 before it).

The tour block is read from README.md at test time, never copied, and run line by line in one
`bash` whose environment is a fresh login's (HOME, the system PATH with Go, no venv), starting
with its own `make dev` in a fresh workdir (MLKUBE_DEV_DIR, which `make dev` and
`mlkube dev env` honour). Then the lines that `make dev` printed run the same way against that
cluster, and docs/online-endpoints.md's block after the printed `eval` line; `make dev-down`
ends it. Every line must exit 0 (a line the tour expects to be refused says so with `!`), and
what the comments promise is checked: a matching kubectl, a copied and Ready Model whose local
file is gone, answers from the local data plane. `make dev-down` must leave no process behind
and the ports of run-local and serve free.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mlkube.contract import API_VERSION
from mlkube.devcluster import procs
from mlkube.k8s import Kube
from support.shell_blocks import (
    LineRun,
    clean_env,
    command_lines,
    failures,
    fenced_block,
    port_free,
    run_lines,
    versions,
)
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
# Ports the README's lines use as printed; the tour cannot swap them and stay verbatim.
TOUR_PORTS = (8081, 8082)


def printed_try_block(make_dev_output: str) -> list[str]:
    """The command lines under "Try (from <repo>):" in what `make dev` printed."""
    block = make_dev_output.split("Try (from ", 1)[1].split("\n", 1)[1]
    return command_lines(block.split("\n\n", 1)[0])


def line_output(runs: list[LineRun], prefix: str) -> str:
    found = [r.output for r in runs if r.line.startswith(prefix)]
    assert len(found) == 1, f"expected one line starting {prefix!r}"
    return found[0]


def assert_matching_kubectl(runs: list[LineRun]) -> None:
    found = versions(line_output(runs, "kubectl version"))
    assert set(found) == {"Client", "Server"}, found
    assert found["Client"] == found["Server"], f"client/server skew: {found}"


# What each Model behind `credit` answers: the sample ONNX models (blue v3, green v4) and, once the
# tour's pipeline ran, its trained scikit-learn model v5 as a 10 % canary.
OUTPUTS_BY_VERSION = {"3": {"label", "probabilities"}, "4": {"label", "probabilities"}}
CANARY_OUTPUTS = {"5": {"predict"}}


def assert_invoke_answered(runs: list[LineRun], after_pipeline: bool = False) -> None:
    answer = line_output(runs, "mlkube endpoint invoke")
    # The background run-local's own lines may interleave with the answer.
    body = json.loads([line for line in answer.splitlines() if line.startswith("{")][-1])
    assert body["model_name"] == "credit-risk", body
    # The router picks a deployment by weight, so after the pipeline its canary may answer.
    expected = OUTPUTS_BY_VERSION | (CANARY_OUTPUTS if after_pipeline else {})
    version = body.get("model_version")
    assert version in expected, f"answered by version {version!r}, expected one of {expected}"
    assert {o["name"] for o in body["outputs"]} == expected[version], body


def assert_batch_scored(runs: list[LineRun]) -> None:
    # The sample input: 5 CSV files of 6,000 rows, every row one item with its prediction.
    scored = line_output(runs, "mlkube batch invoke credit-batch --input")
    assert "Succeeded: 30000/30000 items scored, 0 failed" in scored, scored


def assert_pipeline_ran(runs: list[LineRun]) -> None:
    first, again = [r.output for r in runs if r.line.startswith("mlkube pipeline run ")]
    assert "Succeeded" in first and "credit-risk-v5" in first, first
    # The rerun: every step served from the cache (or the registered Model reused).
    assert again.count("cache miss") == 0 and "cache hit" in again, again
    assert "credit-risk-v6" not in again, again
    lineage = line_output(runs, "mlkube model lineage credit-risk-v5")
    assert "PipelineRun" in lineage and "sha256:" in lineage, lineage


def test_the_readme_tour_and_what_make_dev_prints_run_verbatim(tmp_path: Path) -> None:
    busy = [p for p in TOUR_PORTS if not port_free(p)]
    assert not busy, f"the tour's ports {busy} are taken on this machine: free them to run it"
    workdir = tmp_path / "dev"
    env = clean_env(MLKUBE_DEV_DIR=str(workdir))
    assert shutil.which("mlkube", path=env["PATH"]) is None, "the fresh shell must not find mlkube"
    tour = command_lines(fenced_block((REPO / "README.md").read_text(), "## A tour"))
    assert tour[0].startswith("make dev"), "the tour starts from `make dev`"
    try:
        runs = run_lines(tour, REPO, env, timeout=900, script=tmp_path / "tour.sh")
        assert not failures(runs), failures(runs)
        assert_matching_kubectl(runs)
        assert_invoke_answered(runs)
        refused = line_output(runs, "! kubectl delete model credit-risk-v3")
        assert "is deployed by OnlineEndpoint credit" in refused, refused
        assert_batch_scored(runs)
        # A file the model cannot read is one failed item, named with the reason, not a failure.
        poisoned = line_output(runs, "mlkube batch invoke credit-batch --deployment files")
        assert "Succeeded: 3/4 items scored, 1 failed" in poisoned, poisoned
        assert "applications-02b.csv" in poisoned, poisoned
        assert_pipeline_ran(runs)

        # register copied the file into the default store; it was deleted and still verifies.
        kube = Kube(str(workdir / "kubeconfig"))
        fraud = kube.get(API_VERSION, "Model", "fraud-v1", "default") or {}
        assert fraud["spec"]["artifact"]["uri"].startswith("s3://mlkube-dev/default/fraud/1/")
        assert fraud["status"]["phase"] == "Ready", fraud["status"]
        assert not (REPO / "model.onnx").exists()

        printed = printed_try_block(runs[0].output)
        assert printed[0].startswith("eval "), printed
        again = run_lines(printed, REPO, clean_env(), timeout=600, script=tmp_path / "try.sh")
        assert not failures(again), failures(again)
        assert_matching_kubectl(again)
        assert_invoke_answered(again, after_pipeline=True)
        assert "credit-risk-v3" in line_output(again, "kubectl get models")
        assert_batch_scored(again)

        # docs/online-endpoints.md's block, in a shell set up by make dev's printed eval line.
        docs = (REPO / "docs" / "online-endpoints.md").read_text()
        block = [printed[0], *command_lines(fenced_block(docs, "# Online endpoints"))]
        endpoints = run_lines(block, REPO, clean_env(), timeout=600, script=tmp_path / "docs.sh")
        assert not failures(endpoints), failures(endpoints)
        assert_invoke_answered(endpoints, after_pipeline=True)
        assert "auth mode none" in line_output(endpoints, "! mlkube endpoint get-credentials")
    finally:
        # What the README and `make dev` say stops it, from a fresh shell too.
        down = subprocess.run(["make", "dev-down"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        if down.returncode != 0:  # never leave a cluster behind, whatever make said
            subprocess.run([sys.executable, "-m", "mlkube", "dev", "down", "--workdir",
                            str(workdir)], capture_output=True, timeout=120)  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr
    left = [pid for pid in all_pids() if procs.command_mentions(pid, str(workdir))]
    assert not left, f"`mlkube dev down` left processes running: {left}"
    # run-local and serve stopped with `kill %1` (the shell then ends its jobs: a second
    # SIGTERM while run-local stops once left its servers running).
    assert wait_for(lambda: all(port_free(p) for p in TOUR_PORTS), timeout=15, what="ports free")


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if re.fullmatch(r"\d+", p.name)]
