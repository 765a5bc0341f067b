"""A pipeline step pod as real processes: `python -m mlkube_serving step inputs`, then the user's
command under the real wrapper (`/bin/sh -c WRAPPER mlkube-step python ...`) beside
`python -m mlkube_serving step outputs`, sharing one volume root as the pod's emptyDirs do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.pipeline_contract import (
    ENV_STEP,
    ENV_STEP_ROOT,
    ENV_TERMINATION_LOG,
    StepInput,
    StepManifest,
    StepOutput,
    StepPaths,
    main_command,
)
from mlkube.builders.pipeline_summary import StepSummary, parse_summary


@dataclass(frozen=True)
class Done:
    code: int
    stdout: str
    stderr: str
    termination: str


@dataclass
class StepPod:
    root: Path
    manifest: StepManifest
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def paths(self) -> StepPaths:
        return StepPaths(str(self.root))

    def env(self, container: str) -> dict[str, str]:
        log = self.root.parent / f"termination-{container}"
        log.touch()
        self.logs[container] = log
        return {
            **os.environ,
            ENV_STEP: self.manifest.to_json(),
            ENV_STEP_ROOT: str(self.root),
            ENV_TERMINATION_LOG: str(log),
        }

    def inputs(self, timeout: float = 120) -> Done:
        # The pod's three emptyDirs exist before any container starts; `inputs` sees only two.
        for folder in (self.paths.inputs, self.paths.outputs, self.paths.run):
            os.makedirs(folder, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "mlkube_serving", "step", "inputs"],
            env=self.env("inputs"), capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        return Done(done.returncode, done.stdout, done.stderr, self.logs["inputs"].read_text())

    def start_outputs(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "mlkube_serving", "step", "outputs"],
            env=self.env("outputs"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def start_main(self, script: str, *args: str, shell: str = "/bin/sh") -> subprocess.Popen[str]:
        """The `main` container: the real wrapper around `python -c script args...`, with the
        env the operator gives `main` (paths under this root) and no storage credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLKUBE_S3"))}
        env.update(self.manifest.env(self.paths))
        env[ENV_STEP_ROOT] = str(self.root)
        command = [shell, *main_command([sys.executable, "-c", script], args)[1:]]
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run(self, script: str, *args: str, timeout: float = 120) -> tuple[int, Done]:
        """main and outputs at the same time, as the kubelet starts them; (main's code, outputs)."""
        outputs = self.start_outputs()
        main = self.start_main(script, *args)
        main_code = main.wait(timeout=timeout)
        return main_code, finish(self, outputs, timeout)

    def summary(self) -> StepSummary:
        return parse_summary(self.logs["outputs"].read_text())


def finish(pod: StepPod, process: subprocess.Popen[str], timeout: float = 120) -> Done:
    stdout, stderr = process.communicate(timeout=timeout)
    return Done(process.returncode, stdout, stderr, pod.logs["outputs"].read_text())


def wait_for_file(path: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = Path(path).read_text().strip() if os.path.exists(path) else ""
        if text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in {timeout}s")


def make_pod(
    tmp_path: Path,
    prefix: str,
    inputs: Sequence[StepInput] = (),
    outputs: Sequence[tuple[str, Any]] = (),
) -> StepPod:
    manifest = StepManifest(
        run="r1", step="train", attempt=1, prefix=prefix, inputs=tuple(inputs),
        outputs=tuple(StepOutput(name, kind) for name, kind in outputs),
    )  # fmt: skip
    return StepPod(tmp_path / "pod", manifest)


# The user's training code: writes a folder artifact, a parameter and metrics, and proves it
# read its input through the env the operator gives it.
TRAIN = """
import json, os, pathlib
data = pathlib.Path(os.environ["MLKUBE_INPUT_DATA"])
rows = sum(len(p.read_text().splitlines()) for p in sorted(data.rglob("*.csv")))
model = pathlib.Path(os.environ["MLKUBE_OUTPUT_MODEL"])
(model / "weights").mkdir()
(model / "weights" / "w.bin").write_bytes(bytes(range(256)) * 40)
(model / "model.json").write_text(json.dumps({"rows": rows}))
pathlib.Path(os.environ["MLKUBE_OUTPUT_LR"]).write_text("0.1\\n")
pathlib.Path(os.environ["MLKUBE_OUTPUT_SCORES"]).write_text(json.dumps({"auc": 0.91, "rows": rows}))
"""


def write_data(folder: Path) -> None:
    (folder / "part").mkdir(parents=True)
    (folder / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (folder / "part" / "b.csv").write_text("x,y\n5,6\n")


def summary_of(text: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(text)
    return body


# The S3-compatible server of the storage tests (MinIO when MLKUBE_MINIO_BIN is set, else moto).
from tests.process.storage.conftest import s3_bucket, s3_server  # noqa: E402, F401


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    write_data(folder)
    return folder
