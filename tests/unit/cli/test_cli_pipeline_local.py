"""run-local's pure step resolution (localrun/pipeline.py) and the `runs logs -f` follower.

The cache key of a local step must be the operator's key for the same step: rendered with the
pod's /mlkube paths, never with the temp folder the step really runs in (else no second run
could ever hit); the process itself gets the local paths, literal /mlkube paths included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlkube.api.pipeline import Step
from mlkube.cli import pipeline_runs
from mlkube.cli.errors import CliError
from mlkube.localrun.pipeline import (
    LocalStepError,
    ResolvedInput,
    local_path,
    resolve_input,
    resolve_step,
)
from mlkube.reconcile.pipeline_cache import cache_key

DIGEST = "sha256:" + "ab" * 32
IMAGE_DIGEST = "sha256:" + "1" * 64


def train_step(**extra: Any) -> Step:
    return Step.model_validate({
        "name": "train", "image": f"python@{IMAGE_DIGEST}", "command": ["python", "train.py"],
        "args": ["--data", "{{inputs.data}}", "--out", "{{outputs.model}}",
                 "--lr", "{{parameters.lr}}", "--log", "/mlkube/run/extra.log"],
        "env": [{"name": "RUN", "value": "{{run.name}}"}],
        "inputs": [{"name": "data", "fromStep": {"step": "prep", "output": "rows"}},
                   {"name": "lr_in", "fromParameter": "lr"}],
        "outputs": [{"name": "model"}, {"name": "auc", "type": "metrics"}], **extra,
    })  # fmt: skip


def resolve(step: Step, root: Path) -> Any:
    inputs = [ResolvedInput("data", DIGEST, uri="file:///s/rows", digest=DIGEST),
              ResolvedInput("lr_in", "value:0.1", value="0.1")]  # fmt: skip
    return resolve_step(step, inputs, parameters={"lr": "0.1"}, namespace="default",
                        run="r1", uid="u1", attempt=1, store="file:///s", root=root)  # fmt: skip


def test_the_key_is_the_operators_and_does_not_depend_on_the_local_folder(tmp_path: Path) -> None:
    one = resolve(train_step(), tmp_path / "a")
    two = resolve(train_step(), tmp_path / "b")
    assert one.key == two.key and one.image_note == ""
    expected = cache_key(
        namespace="default", image_digest=IMAGE_DIGEST, command=["python", "train.py"],
        args=["--data", "/mlkube/inputs/data", "--out", "/mlkube/outputs/model", "--lr", "0.1",
              "--log", "/mlkube/run/extra.log"],
        env=[{"name": "RUN", "value": "r1"}], inputs={"data": DIGEST, "lr_in": "value:0.1"},
        outputs=[("model", "artifact"), ("auc", "metrics")], version="",
        parameters={"lr": "0.1"},
    )  # fmt: skip
    assert one.key == expected


def test_the_process_gets_local_paths_and_the_pod_env(tmp_path: Path) -> None:
    local = resolve(train_step(), tmp_path)
    root = str(tmp_path)
    assert local.main_argv[:2] == ["/bin/sh", "-c"] and local.main_argv[3] == "mlkube-step"
    assert local.main_argv[4:] == [
        "python", "train.py", "--data", f"{root}/inputs/data", "--out", f"{root}/outputs/model",
        "--lr", "0.1", "--log", f"{root}/run/extra.log"]  # fmt: skip
    env = local.env
    assert env["MLKUBE_INPUT_DATA"] == f"{root}/inputs/data"
    assert env["MLKUBE_INPUT_LR_IN"] == "0.1" and env["MLKUBE_PARAM_LR"] == "0.1"
    assert env["MLKUBE_OUTPUT_AUC"] == f"{root}/outputs/auc"
    assert env["MLKUBE_STEP_ROOT"] == root and env["RUN"] == "r1"
    assert local.manifest.prefix == "file:///s/default/pipelineruns/r1/train/a1"
    assert [i.name for i in local.manifest.inputs] == ["data"]  # only artifacts are fetched


def test_what_changes_the_key(tmp_path: Path) -> None:
    base = resolve(train_step(), tmp_path).key
    assert resolve(train_step(cache={"version": "2"}), tmp_path).key != base
    tagged = resolve(train_step(image="python:3.11"), tmp_path)
    assert tagged.key != base and "not pinned by digest" in tagged.image_note
    ignored = train_step(cache={"ignoredInputs": ["data"]})
    assert resolve(ignored, tmp_path).key != base  # the data digest left out


def test_local_path_maps_only_the_pod_root() -> None:
    assert local_path("/mlkube/outputs/x", "/tmp/w") == "/tmp/w/outputs/x"
    assert local_path("--out=/mlkube/outputs/x", "/tmp/w") == "--out=/tmp/w/outputs/x"
    assert local_path("/mlkube", "/tmp/w") == "/tmp/w"
    assert local_path("/data/mlkube/x", "/tmp/w") == "/data/mlkube/x"
    assert local_path("/mlkubex/y", "/tmp/w") == "/mlkubex/y"


def test_inputs_resolve_like_the_operator() -> None:
    step = Step.model_validate({
        "name": "s", "image": "i", "command": ["x"],
        "inputs": [{"name": "a", "fromStep": {"step": "up", "output": "lr"}},
                   {"name": "b", "uri": "file:///d"}, {"name": "m", "model": "credit"}],
    })  # fmt: skip
    upstream = {"up": {"outputs": [{"name": "lr", "type": "parameter", "value": "0.3"}]}}
    got = resolve_input(step, 0, {}, upstream, lambda uri: DIGEST)
    assert (got.value, got.keyed, got.uri) == ("0.3", "value:0.3", None)
    got = resolve_input(step, 1, {}, upstream, lambda uri: DIGEST)
    assert (got.uri, got.digest, got.keyed) == ("file:///d", DIGEST, DIGEST)
    with pytest.raises(LocalStepError, match="Model inputs need the cluster"):
        resolve_input(step, 2, {}, upstream, lambda uri: DIGEST)
    with pytest.raises(LocalStepError, match="step up recorded no output lr"):
        resolve_input(step, 0, {}, {"up": {}}, lambda uri: DIGEST)


def pod(step: str, name: str, created: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created,
                         "labels": {"mlkube.dev/pipeline-step": step}},
            "status": {"phase": "Running"}}  # fmt: skip


def test_logs_pick_the_newest_attempt_per_step_in_dag_order() -> None:
    pods = [pod("score", "s-a1", "t1"), pod("train", "t-a2", "t3"), pod("train", "t-a1", "t2")]
    found = pipeline_runs.newest_pods(pods, ["train", "score"])
    assert [(s, p["metadata"]["name"]) for s, p in found] == [("train", "t-a2"), ("score", "s-a1")]


def test_follow_prints_each_log_as_it_grows_until_the_run_ends(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = iter([
        {"t": "epoch 1\n"}, {"t": "epoch 1\nepoch 2\n"},
        {"t": "epoch 1\nepoch 2\ndone\n", "s": "scoring\n"},
    ])  # fmt: skip
    current: dict[str, str] = {}
    ends = iter([False, False, True])
    pods = [pod("train", "t", "1"), pod("score", "s", "2")]

    def finished() -> bool:
        current.clear()
        current.update(next(logs))
        return next(ends)

    def read(name: str) -> str:
        if name not in current:
            raise CliError("container main is waiting to start")
        return current[name]

    pipeline_runs.follow_logs(lambda: pods, read, finished, ["train", "score"],
                              sleep=lambda _: None)  # fmt: skip
    out, err = capsys.readouterr()
    assert out == "epoch 1\nepoch 2\ndone\nscoring\n"
    assert err.count("==> step train: pod t") == 1 and "==> step score: pod s" in err


def test_when_false_skips_the_step_and_its_consumers_without_running_anything(
    tmp_path: Path,
) -> None:
    from mlkube.api.pipeline import PipelineSpec
    from mlkube.cli.pipeline_local_run import LocalPipeline

    spec = PipelineSpec.model_validate({
        "parameters": [{"name": "go", "type": "boolean", "default": "false"}],
        "steps": [
            {"name": "a", "image": "i", "command": ["python", "-c", "raise SystemExit(9)"],
             "when": "parameters.go", "outputs": [{"name": "out"}]},
            {"name": "b", "image": "i", "command": ["python", "-c", "raise SystemExit(9)"],
             "inputs": [{"name": "x", "fromStep": {"step": "a", "output": "out"}}]},
            {"name": "c", "type": "registerModel", "dependsOn": ["a"],
             "registerModel": {"artifact": {"step": "a", "output": "out"},
                               "modelName": "m", "framework": "sklearn"}},
        ],
    })  # fmt: skip
    seen: list[str] = []
    local = LocalPipeline(spec, run="r", namespace="default", parameters={"go": "false"},
                          store=tmp_path / "cache", workdir=tmp_path / "w",
                          show=lambda s: seen.append(str(s["phase"])))  # fmt: skip
    status = local.execute()
    steps = {s["name"]: s for s in status["steps"]}
    assert status["phase"] == "Succeeded" and seen[-1] == "Succeeded"
    assert steps["a"]["phase"] == "Skipped"
    assert steps["a"]["message"] == "when parameters.go is false"
    assert steps["b"]["message"] == "needs step a, which was skipped"
    assert steps["c"]["phase"] == "Skipped"
    assert not (tmp_path / "w" / "logs").exists()  # no process was started
