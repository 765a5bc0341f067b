"""The outputs container's small decisions: when main is over, and how output files are read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlkube.builders.pipeline_contract import StepManifest, StepOutput, StepPaths
from mlkube_serving.step.collect import collect
from mlkube_serving.step.errors import StepError
from mlkube_serving.step.inputs import prepare
from mlkube_serving.step.wait import alive, read_int, wait_for_main


def _paths(tmp_path: Path) -> StepPaths:
    paths = StepPaths(str(tmp_path))
    os.makedirs(paths.run)
    os.makedirs(paths.outputs)
    return paths


def test_waits_until_the_exit_code_appears(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    Path(paths.pid_file).write_text(f"{os.getpid()}\n")  # alive: keep waiting
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            Path(paths.exit_code_file).write_text("")  # being written: not yet
        else:
            Path(paths.exit_code_file).write_text("137\n")

    assert wait_for_main(paths, 0.2, sleep) == 137
    assert sleeps == [0.2, 0.2]


def test_a_gone_shell_without_exit_code_is_killed(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    Path(paths.pid_file).write_text(str(gone.pid))
    assert not alive(gone.pid)
    assert wait_for_main(paths, 0.01, lambda s: None) is None


def test_a_gone_shell_that_wrote_its_exit_code_is_not_killed(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    Path(paths.exit_code_file).write_text("0\n")
    Path(paths.pid_file).write_text("999999999")
    assert wait_for_main(paths, 0.01, lambda s: None) == 0


def test_read_int_and_alive_edge_cases(tmp_path: Path) -> None:
    assert read_int(str(tmp_path / "none")) is None
    (tmp_path / "junk").write_text("$\n")  # an unescaped wrapper's pid file
    assert read_int(str(tmp_path / "junk")) is None
    assert alive(os.getpid()) and not alive(0) and not alive(-1)


def _manifest(*outputs: tuple[str, str]) -> StepManifest:
    return StepManifest(
        "r", "s", 1, "file:///store/a1",
        outputs=tuple(StepOutput(n, t) for n, t in outputs),  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "value"),
    [(b"0.1\n", "0.1"), (b"0.1\r\n", "0.1"), (b"a\n\n", "a\n"), (b"", ""), ("é".encode(), "é")],
)
def test_parameter_drops_one_trailing_newline(tmp_path: Path, content: bytes, value: str) -> None:
    paths = _paths(tmp_path)
    Path(paths.output("lr")).write_bytes(content)
    assert collect(_manifest(("lr", "parameter")), paths)["lr"].value == value


def test_parameter_of_exactly_1_kib_plus_newline_is_fine(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    Path(paths.output("lr")).write_bytes(b"x" * 1024 + b"\n")
    assert collect(_manifest(("lr", "parameter")), paths)["lr"].value == "x" * 1024


def test_one_metric_in_two_outputs_is_refused(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    Path(paths.output("a")).write_text('{"auc": 1}')
    Path(paths.output("b")).write_text('{"auc": 2}')
    with pytest.raises(StepError, match="metric 'auc' is reported by two metrics outputs"):
        collect(_manifest(("a", "metrics"), ("b", "metrics")), paths)


def test_special_files_are_refused(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    os.mkfifo(paths.output("lr"))  # would block a plain open()
    os.makedirs(paths.output("model"))
    os.mkfifo(os.path.join(paths.output("model"), "pipe"))
    with pytest.raises(StepError) as caught:
        collect(_manifest(("lr", "parameter"), ("model", "artifact")), paths)
    assert "output lr is not a regular file" in str(caught.value)
    assert "output model: pipe is not a regular file or folder" in str(caught.value)


def test_a_single_file_artifact_is_accepted(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    Path(paths.output("model")).write_bytes(b"onnx")
    assert collect(_manifest(("model", "artifact")), paths) == {}


def test_inputs_touches_only_its_two_volumes(tmp_path: Path) -> None:
    """In a pod `inputs` mounts inputs and outputs only: /mlkube/run would be created in a
    root-owned (or read-only) /mlkube and fail."""
    paths = StepPaths(str(tmp_path))
    prepare(_manifest(("model", "artifact"), ("lr", "parameter")), paths)
    assert sorted(os.listdir(tmp_path)) == ["inputs", "outputs"]
    assert os.listdir(paths.outputs) == ["model"]  # parameters are files main writes
    assert os.stat(paths.output("model")).st_mode & 0o777 == 0o777


def test_folders_nested_too_deep_are_refused(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    deep = Path(paths.output("model"), *["d"] * 70)
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    with pytest.raises(StepError, match="nested deeper than 64 folders"):
        collect(_manifest(("model", "artifact")), paths)
