"""`mlkube pipeline run-local -f` as a real process on a three-step train-like pipeline with
real files: every step is the pod's programs (`step inputs`, the user's Python under the
/bin/sh wrapper, `step outputs`), outputs flow between steps by digest, the evaluate gate runs
on the recorded metrics, registerModel is skipped (needs the cluster), a second run is served
from the local cache, and each reason to miss is seen: a changed input byte, ForceRerun, a
deleted cached output, a changed parameter. A failing step fails the command with its message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

PREP = (
    "import os,pathlib\n"
    "src=pathlib.Path(os.environ['MLKUBE_INPUT_RAW'])\n"
    "out=pathlib.Path(os.environ['MLKUBE_OUTPUT_DATA'])\n"
    "rows=[l for p in sorted(src.iterdir()) for l in p.read_text().splitlines()[1:]]\n"
    "(out/'rows.csv').write_text('\\n'.join(rows)+'\\n')\n"
)
TRAIN = (
    "import json,os,pathlib,sys\n"
    "data=pathlib.Path(sys.argv[1])/'rows.csv'\n"
    "rows=[[float(x) for x in l.split(',')] for l in data.read_text().split()]\n"
    "w=sum(y for _,y in rows)/sum(x for x,_ in rows)*float(os.environ['MLKUBE_PARAM_SCALE'])\n"
    "pathlib.Path(sys.argv[2],'model.json').write_text(json.dumps({'w':w}))\n"
    "pathlib.Path(os.environ['MLKUBE_OUTPUT_SCORES']).write_text(json.dumps({'auc':0.9,'w':w}))\n"
    "print('trained', w)\n"
)
SCORE = (
    "import json,os,pathlib\n"
    "m=json.loads((pathlib.Path(os.environ['MLKUBE_INPUT_MODEL'])/'model.json').read_text())\n"
    "pathlib.Path('/mlkube/outputs/report').mkdir(exist_ok=True)\n"  # a literal pod path
    "pathlib.Path('/mlkube/outputs/report/report.txt').write_text('w=%s' % m['w'])\n"
)


def pipeline(raw: Path, fail: bool = False) -> dict[str, Any]:
    image = "python@sha256:" + "1" * 64
    steps: list[dict[str, Any]] = [
        {"name": "prep", "image": image, "command": ["python", "-c", PREP],
         "inputs": [{"name": "raw", "uri": raw.as_uri()}], "outputs": [{"name": "data"}]},
        {"name": "train", "image": image, "command": ["python", "-c", TRAIN],
         "args": ["{{inputs.data}}", "{{outputs.model}}"],
         "inputs": [{"name": "data", "fromStep": {"step": "prep", "output": "data"}}],
         "outputs": [{"name": "model"}, {"name": "scores", "type": "metrics"}]},
        {"name": "score", "image": image,
         "command": ["python", "-c", "raise SystemExit('boom: bad model')" if fail else SCORE],
         "inputs": [{"name": "model", "fromStep": {"step": "train", "output": "model"}}],
         "outputs": [{"name": "report"}]},
        {"name": "gate", "type": "evaluate", "evaluate": {
            "metrics": [{"name": "auc", "from": {"step": "train", "output": "scores"},
                         "min": 0.8}]}},
        {"name": "register", "type": "registerModel", "dependsOn": ["gate", "score"],
         "registerModel": {"artifact": {"step": "train", "output": "model"},
                           "modelName": "toy", "framework": "sklearn"}},
    ]  # fmt: skip
    return {"apiVersion": "mlkube.dev/v1alpha1", "kind": "Pipeline",
            "metadata": {"name": "toy"},
            "spec": {"parameters": [{"name": "scale", "type": "number", "default": "1"}],
                     "steps": steps}}  # fmt: skip


def run_local(tmp: Path, file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mlkube", "pipeline", "run-local", "-f", str(file),
            "--cache-dir", str(tmp / "cache"), *extra]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def progress(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """step → its last progress line (stderr)."""
    lines: dict[str, str] = {}
    for line in done.stderr.splitlines():
        name = line.split(" ", 1)[0]
        if name in ("prep", "train", "score", "gate", "register"):
            lines[name] = line
    return lines


def entries(tmp: Path) -> dict[str, dict[str, Any]]:
    found = (tmp / "cache" / "default" / "_mlkube" / "pipeline-cache").glob("*.json")
    docs = [json.loads(p.read_text()) for p in found]
    return {d["key"]: d for d in docs}


def test_run_local_flows_outputs_caches_and_misses_for_each_reason(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text("x,y\n1,2\n2,4\n")
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(pipeline(raw)))

    first = run_local(tmp_path, file, "--work-dir", str(tmp_path / "w1"), "--name", "r1")
    assert first.returncode == 0, first.stderr
    lines = progress(first)
    for name in ("prep", "train", "score"):
        assert "Succeeded  attempt 1  cache miss (no entry)" in lines[name], lines
    assert "gate passed: auc 0.90 >= min 0.80" in lines["gate"]
    assert "registerModel: skipped locally (needs the cluster)" in lines["register"]
    assert (
        "PipelineRun" not in first.stdout and "Phase:       Succeeded (5/5 steps)" in first.stdout
    )
    # Outputs flowed: train read prep's rows, score read train's model (via digests).
    report = tmp_path / "cache/default/pipelineruns/r1/score/a1/outputs/report/report.txt"
    assert report.read_text() == "w=2.0"
    keyed = entries(tmp_path)
    assert {e["step"] for e in keyed.values()} == {"prep", "train", "score"}
    train = next(e for e in keyed.values() if e["step"] == "train")
    assert train["metrics"] == {"auc": 0.9, "w": 2.0}
    model = next(o for o in train["outputs"] if o["name"] == "model")
    assert model["digest"].startswith("sha256:") and model["uri"].endswith(
        "/train/a1/outputs/model"
    )
    assert "trained 2.0" in (tmp_path / "w1/logs/train-a1-main.log").read_text()

    second = run_local(tmp_path, file, "--name", "r2")
    assert second.returncode == 0, second.stderr
    lines = progress(second)
    for name in ("prep", "train", "score"):
        assert "Succeeded  cache hit (run r1)" in lines[name], lines
    assert not (tmp_path / "cache/default/pipelineruns/r2").exists()  # nothing ran

    # One changed input byte: prep misses (new key); its output is the same rows, so train
    # and score are served by content: the cache is addressed by digests, not by run.
    (raw / "a.csv").write_text("x,y\n1,2\n2,4\n".replace("x,y", "x,z"))
    third = progress(run_local(tmp_path, file, "--name", "r3"))
    assert "cache miss (no entry)" in third["prep"]
    assert "cache hit (run r1)" in third["train"] and "cache hit (run r1)" in third["score"]
    (raw / "a.csv").write_text("x,y\n1,2\n2,5\n")  # different rows: everything downstream runs
    fourth = progress(run_local(tmp_path, file, "--name", "r4"))
    assert all("cache miss (no entry)" in fourth[n] for n in ("prep", "train", "score")), fourth

    # ForceRerun runs everything; a deleted cached output is a miss that says so.
    forced = progress(run_local(tmp_path, file, "--name", "r5", "--cache-policy", "ForceRerun"))
    assert all("cache miss (ForceRerun)" in forced[n] for n in ("prep", "train", "score"))
    for f in (tmp_path / "cache/default/pipelineruns/r5/score/a1/outputs/report").iterdir():
        f.unlink()
    missing = progress(run_local(tmp_path, file, "--name", "r6"))
    assert "cache hit (run r5)" in missing["train"]
    assert "cache miss (output report missing)" in missing["score"], missing
    # A parameter value is part of every step's key.
    scaled = progress(run_local(tmp_path, file, "--name", "r7", "-p", "scale=2"))
    assert all("cache miss (no entry)" in scaled[n] for n in ("prep", "train", "score"))


def test_a_failing_step_fails_the_command_with_its_message(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text("x,y\n1,2\n")
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(pipeline(raw, fail=True)))
    done = run_local(tmp_path, file, "--name", "bad")
    assert done.returncode == 1
    lines = progress(done)
    assert "Failed     attempt 1  cache miss (no entry)" in lines["score"], lines
    assert lines["score"].endswith(": main exited 1: boom: bad model")
    assert "an earlier step failed (failFast)" in lines["register"]
    assert "run Failed" in done.stderr
    bad = run_local(tmp_path, file, "-p", "scale=fast")
    assert bad.returncode == 1 and "parameter scale: 'fast' is not a number" in bad.stderr
