"""A step pod's three processes end to end: inputs verified and materialised, the user's python
command under the real /bin/sh wrapper, outputs uploaded (file:// and MinIO) with the registry's
digest, and what happens when main fails or is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import s3fs
from tests.process.step.conftest import TRAIN, finish, make_pod, summary_of, wait_for_file

from mlkube.builders.pipeline_contract import StepInput, summary_uri
from mlkube.builders.pipeline_summary import listing_fingerprint, parse_summary
from mlkube.storage import ArtifactNotFound, compute_digest
from mlkube.storage.listing import list_files

OUTPUTS = (("model", "artifact"), ("lr", "parameter"), ("scores", "metrics"))


def _check_produced(pod_summary: dict[str, object], prefix: str) -> None:
    summary = parse_summary(json.dumps(pod_summary))
    assert summary.succeeded and not summary.truncated
    model = summary.output("model")
    assert model is not None and model.uri == f"{prefix}/outputs/model"
    # The digest is the registry's: computed again from the store, the same.
    facts = compute_digest(model.uri)  # type: ignore[arg-type]
    assert (model.digest, model.size, model.file_count) == (facts.digest, facts.size, 2)
    assert model.size == 256 * 40 + len('{"rows": 5}')
    assert summary.output("lr").value == "0.1"  # type: ignore[union-attr]
    assert summary.metrics == {"auc": 0.91, "rows": 5}  # main read 3 + 2 lines of its input


def test_step_pod_over_file_store(tmp_path: Path, data_dir: Path) -> None:
    data_uri = f"file://{data_dir}"
    digest = compute_digest(data_uri).digest
    prefix = f"file://{tmp_path}/store/ns/pipelineruns/r1/train/a1"
    pod = make_pod(tmp_path, prefix, [StepInput("data", data_uri, digest)], OUTPUTS)
    fetched = pod.inputs()
    assert fetched.code == 0, fetched.stderr
    assert summary_of(fetched.termination)["inputs"][0]["digest"] == digest
    assert (pod.root / "inputs" / "data" / "part" / "b.csv").read_text() == "x,y\n5,6\n"
    assert os.stat(pod.root / "outputs" / "model").st_mode & 0o777 == 0o777

    main_code, outputs = pod.run(TRAIN)
    assert (main_code, outputs.code) == (0, 0), outputs.stderr
    assert (pod.root / "run" / "exit-code").read_text().strip() == "0"
    _check_produced(summary_of(outputs.termination), prefix)
    stored = (tmp_path / "store/ns/pipelineruns/r1/train/a1/_mlkube/summary.json").read_text()
    assert stored == outputs.termination
    # The listing fingerprint matches a listing of the store (relative paths, sizes).
    model = pod.summary().output("model")
    assert model is not None and model.uri is not None
    assert listing_fingerprint(list_files(model.uri)) == model.listing


def test_step_pod_over_minio(tmp_path: Path, data_dir: Path, s3_bucket: str) -> None:
    fs = s3fs.S3FileSystem(
        skip_instance_cache=True,
        client_kwargs={"endpoint_url": os.environ["MLKUBE_S3_ENDPOINT_URL"]},
    )
    for path in sorted(data_dir.rglob("*.csv")):
        fs.put_file(str(path), f"{s3_bucket}/data/{path.relative_to(data_dir)}")
    data_uri = f"s3://{s3_bucket}/data"
    digest = compute_digest(data_uri).digest
    prefix = f"s3://{s3_bucket}/ns/pipelineruns/r1/train/a1"
    pod = make_pod(tmp_path, prefix, [StepInput("data", data_uri, digest)], OUTPUTS)
    fetched = pod.inputs()
    assert fetched.code == 0, fetched.stderr

    main_code, outputs = pod.run(TRAIN)
    assert (main_code, outputs.code) == (0, 0), outputs.stderr
    _check_produced(summary_of(outputs.termination), prefix)
    stored = fs.cat_file(summary_uri(prefix).removeprefix("s3://")).decode()
    assert parse_summary(stored) == pod.summary()
    # The cache's cheap re-check: one listing of the store, no bytes read.
    model = pod.summary().output("model")
    assert model is not None and model.uri is not None and model.listing is not None
    assert listing_fingerprint(list_files(model.uri)) == model.listing
    key = model.uri.removeprefix("s3://")
    fs.pipe_file(f"{key}/weights/w.bin", b"shorter")  # resized behind the cache's back
    assert listing_fingerprint(list_files(model.uri)) != model.listing
    fs.rm(f"{key}/weights/w.bin")
    assert [path for path, _ in list_files(model.uri)] == ["model.json"]
    fs.rm(f"{key}/model.json")
    with pytest.raises(ArtifactNotFound):
        list_files(model.uri)


def test_main_failing_uploads_nothing(tmp_path: Path) -> None:
    prefix = f"file://{tmp_path}/store/a1"
    pod = make_pod(tmp_path, prefix, outputs=OUTPUTS)
    assert pod.inputs().code == 0
    script = (
        "import os, pathlib, sys\n"
        "pathlib.Path(os.environ['MLKUBE_OUTPUT_LR']).write_text('1')\n"
        "sys.exit(3)\n"
    )
    main_code, outputs = pod.run(script)
    assert (main_code, outputs.code) == (3, 0)
    assert summary_of(outputs.termination) == {"exitCode": 3, "outputs": []}
    assert not (tmp_path / "store").exists()


def test_main_killed_uploads_nothing_and_exits_zero(tmp_path: Path) -> None:
    """kill -9 of the user's process and of the wrapper shell (what an OOM kill or a deadline
    does to the container): no exit-code is written; outputs notices the pid is gone."""
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", outputs=OUTPUTS)
    assert pod.inputs().code == 0
    outputs = pod.start_outputs()
    main = pod.start_main("import time; time.sleep(120)")
    shell_pid = int(wait_for_file(str(pod.root / "run" / "main.pid")))
    assert shell_pid == main.pid  # the wrapper records its own pid ($$)
    child = _child_of(shell_pid)
    os.kill(child, signal.SIGKILL)
    os.kill(shell_pid, signal.SIGKILL)
    started = time.monotonic()
    main.wait(timeout=10)  # reaped, as the kubelet (or the pod's pause process) would
    done = finish(pod, outputs, timeout=30)
    noticed = time.monotonic() - started
    assert done.code == 0, done.stderr
    body = summary_of(done.termination)
    assert body["exitCode"] is None and "killed" in body["error"]
    assert not (pod.root / "run" / "exit-code").exists()
    assert not (tmp_path / "store").exists()
    assert noticed < 5, f"outputs took {noticed:.2f}s to notice main was gone"


def test_shell_killed_while_unreaped_counts_as_gone(tmp_path: Path) -> None:
    """A zombie (dead, not yet reaped by its parent) is gone too: the dev executor may reap late."""
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", outputs=OUTPUTS)
    assert pod.inputs().code == 0
    outputs = pod.start_outputs()
    main = pod.start_main("import time; time.sleep(120)")
    shell_pid = int(wait_for_file(str(pod.root / "run" / "main.pid")))
    child = _child_of(shell_pid)
    os.kill(child, signal.SIGKILL)
    os.kill(shell_pid, signal.SIGKILL)
    done = finish(pod, outputs, timeout=30)  # main not waited for yet: a zombie meanwhile
    assert done.code == 0 and summary_of(done.termination)["exitCode"] is None
    main.wait(timeout=10)


@pytest.mark.parametrize("shell", ["/bin/sh", shutil.which("bash") or "bash"])
def test_sigterm_to_the_wrapper_reaches_the_command(tmp_path: Path, shell: str) -> None:
    """Pod deletion signals the container's first process (the shell): the user's code gets
    SIGTERM as it would without the wrapper, and its own exit code is what gets reported."""
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", outputs=OUTPUTS)
    assert pod.inputs().code == 0
    marker = tmp_path / "terminated"
    script = (
        "import pathlib, signal, sys, time\n"
        "def stop(signum, frame):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('checkpointed')\n"
        "    time.sleep(0.3)\n"  # the shell's wait is interrupted meanwhile and must wait again
        "    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    outputs = pod.start_outputs()
    main = pod.start_main(script, shell=shell)
    assert main.stdout is not None and main.stdout.readline() == "ready\n"
    started = time.monotonic()
    main.send_signal(signal.SIGTERM)
    assert main.wait(timeout=10) == 7
    assert time.monotonic() - started < 5
    assert marker.read_text() == "checkpointed"
    assert (pod.root / "run" / "exit-code").read_text().strip() == "7"
    done = finish(pod, outputs)
    assert done.code == 0 and summary_of(done.termination) == {"exitCode": 7, "outputs": []}


def _child_of(pid: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no child")
