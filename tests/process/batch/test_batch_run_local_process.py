"""`mlkube batch run-local -f` as a real process: the CLI plans, scores every index and merges
with the scorer's own processes, and the merged predictions equal `model.predict` on the whole
input; the CLI process itself never imports the data plane."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tests.process.batch.conftest import read_output, write_inputs

from mlkube.contract import API_VERSION

# Runs the CLI's main() in a fresh interpreter and reports which heavy modules it imported.
_PROBE = """
import json, sys
from mlkube.cli.main import main
code = main(sys.argv[1:])
heavy = ("numpy", "pandas", "sklearn", "onnxruntime", "pyarrow", "mlkube_serving")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def _manifests(tmp_path: Path, size: str, threshold: int = -1) -> Path:
    endpoint = {
        "apiVersion": API_VERSION, "kind": "BatchEndpoint", "metadata": {"name": "credit"},
        "spec": {"defaultDeployment": "main", "deployments": [{
            "name": "main", "model": "credit-v1", "miniBatchSize": size, "instanceCount": 2,
            "maxConcurrencyPerInstance": 2, "errorThreshold": threshold,
            "retrySettings": {"maxRetries": 1, "timeoutSeconds": 60},
        }]},
    }  # fmt: skip
    job = {
        "apiVersion": API_VERSION, "kind": "BatchJob", "metadata": {"name": "nightly"},
        "spec": {"endpoint": "credit", "input": {"uri": f"file://{tmp_path}/in"}},
    }  # fmt: skip
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump_all([endpoint, job]))
    return path


def _cli(*argv: str) -> tuple[int, str, list[str]]:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    *log, imported = done.stderr.strip().splitlines()
    return done.returncode, done.stdout + "\n".join(log), json.loads(imported)


def test_run_local_predictions_equal_model_predict(tmp_path: Path, model: Any) -> None:
    whole = write_inputs(tmp_path / "in", "csv", (700, 13, 300))
    out = tmp_path / "out"
    code, text, imported = _cli(
        "batch", "run-local", "-f", str(_manifests(tmp_path, "100rows")), "--model",
        str(model[0]), "--output", f"file://{out}", "--work-dir", str(tmp_path / "wd"),
    )  # fmt: skip
    assert code == 0, text
    assert imported == []  # the scorer ran in its own processes
    assert f"items:        {len(whole):,} total, {len(whole):,} succeeded, 0 failed" in text
    assert f"predictions:  file://{out}/predictions.csv" in text
    got = read_output(out / "predictions.csv", "csv")["prediction"].to_numpy()
    np.testing.assert_array_equal(got, model[1].predict(whole))
    # Two instances -> up to 8 indexes, as the operator would shard it; each logged apart.
    plan = json.loads((out / "_mlkube/plan.json").read_text())
    scored = sorted(p.name for p in (tmp_path / "wd/logs").glob("score-*.log"))
    assert len(scored) == min(8, len(plan["miniBatches"])) and len(scored) > 1


def test_run_local_reports_failed_items_and_threshold(tmp_path: Path, model: Any) -> None:
    write_inputs(tmp_path / "in", "csv", (40, 40))
    (tmp_path / "in" / "part-02.csv").write_text("f0,f1,f2,f3\n1,2,oops,4\n")  # poisoned file
    code, text, _ = _cli(
        "batch", "run-local", "-f", str(_manifests(tmp_path, "1", threshold=0)), "--model",
        str(model[0]), "--work-dir", str(tmp_path / "wd"), "--workers", "1",
    )  # fmt: skip
    assert code == 1, text
    assert "BatchJob nightly Failed: ErrorThresholdExceeded" in text
    assert "mini-batch 2 (attempt 1)" in text  # the poisoned file's mini-batch, with its error
    assert f"failed items: {(tmp_path / 'wd/output').as_uri()}/_mlkube/deadletter/" in text


def test_run_local_refuses_bad_arguments(tmp_path: Path) -> None:
    code, text, _ = _cli("batch", "run-local", "-f", str(_manifests(tmp_path, "10")))
    assert code == 1 and "error: -f needs --model PATH" in text
    code, text, _ = _cli("batch", "run-local")
    assert code == 1 and "error: pass a BatchJob name or -f FILE" in text
