"""storage-initializer command over file:// artifacts (the storage layer does the transfer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlkube.storage import compute_digest
from mlkube_serving.storage_initializer import EXIT_ERROR, EXIT_MISMATCH, EXIT_USAGE, main


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    folder = tmp_path / "artifact"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"weights")
    (folder / "sub" / "extra.txt").write_text("hello")
    return folder


def test_download_with_matching_digest(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = artifact.as_uri()
    digest = compute_digest(uri).digest
    log = tmp_path / "termination-log"
    log.write_text("")
    dest = tmp_path / "models"
    code = main(
        ["--uri", uri, "--dest", str(dest), "--digest", digest, "--termination-log", str(log)]
    )
    assert code == 0
    assert (dest / "model.joblib").read_bytes() == b"weights"
    assert (dest / "sub" / "extra.txt").read_text() == "hello"
    facts = json.loads(capsys.readouterr().out)
    assert facts == {"uri": uri, "digest": digest, "size": 12, "fileCount": 2}
    assert json.loads(log.read_text()) == facts


def test_mismatch_fails_and_removes_the_files(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "sha256:" + "0" * 64
    dest = tmp_path / "models"
    log = tmp_path / "termination-log"
    log.write_text("")  # Kubernetes creates it; the operator reads it back from the pod status
    args = ["--uri", artifact.as_uri(), "--dest", str(dest), "--digest", wrong]
    code = main([*args, "--termination-log", str(log)])
    assert code == EXIT_MISMATCH
    err = capsys.readouterr().err
    assert "digest mismatch" in err and wrong in err
    assert not (dest / "model.joblib").exists()
    assert log.read_text() == err.strip()  # the reason, not just an exit code


def test_termination_log_from_the_dev_pod_executor(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLKUBE_TERMINATION_LOG names the file when there is no /dev/termination-log."""
    log = tmp_path / "init" / "termination-log"
    log.parent.mkdir()
    log.write_text("")
    monkeypatch.setenv("MLKUBE_TERMINATION_LOG", str(log))
    wrong = "sha256:" + "0" * 64
    args = ["--uri", artifact.as_uri(), "--dest", str(tmp_path / "m"), "--digest", wrong]
    assert main(args) == EXIT_MISMATCH
    assert "digest mismatch" in log.read_text()


def test_digest_only_mode_from_env(
    artifact: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLKUBE_ARTIFACT_URI", artifact.as_uri())
    monkeypatch.setenv("MLKUBE_ARTIFACT_DIGEST", compute_digest(artifact.as_uri()).digest)
    assert main(["--termination-log", "/nonexistent/log"]) == 0
    assert json.loads(capsys.readouterr().out)["fileCount"] == 2
    monkeypatch.setenv("MLKUBE_ARTIFACT_DIGEST", "sha256:" + "1" * 64)
    assert main([]) == EXIT_MISMATCH


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], EXIT_USAGE, "--uri"),
        (["--uri", "file:///definitely/not/here"], EXIT_ERROR, "error:"),
        (["--uri", "ftp://host/x"], EXIT_ERROR, "error:"),
        (["--uri", "file:///nowhere", "--digest", "md5:abc"], EXIT_ERROR, "malformed digest"),
    ],
)
def test_errors_exit_non_zero_with_a_message(
    args: list[str],
    code: int,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MLKUBE_ARTIFACT_URI", raising=False)
    monkeypatch.delenv("MLKUBE_ARTIFACT_DIGEST", raising=False)
    assert main(args) == code
    assert message in capsys.readouterr().err


def test_a_download_without_a_digest_is_refused_before_any_transfer(
    artifact: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: a baseline without spec.baseline.digest was downloaded and used unverified.
    monkeypatch.delenv("MLKUBE_ARTIFACT_DIGEST", raising=False)
    dest = tmp_path / "baseline"
    assert main(["--uri", artifact.as_uri(), "--dest", str(dest)]) == EXIT_ERROR
    assert "without --digest" in capsys.readouterr().err
    assert not dest.exists() or not any(dest.iterdir())
