"""CLI verbs fail with one line and exit 1 when the API server cannot be reached (issue 9 A3).

Each case runs the real CLI in a subprocess against a kubeconfig that points at a closed
loopback port: before the fix every verb printed a 25-line urllib3 traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlkube.devcluster.procs import free_port

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "examples/models/credit-risk/3/sample-request.json"


@pytest.fixture(scope="module")
def closed_server(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    server = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    kubeconfig = tmp_path_factory.mktemp("kube") / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": server,
                                                  "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}],
    }))  # fmt: skip
    return server, kubeconfig


def mlkube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlkube", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)  # fmt: skip


@pytest.mark.parametrize(
    "verb",
    [
        ["model", "list"],
        ["model", "show", "credit-risk-v3"],
        ["endpoint", "list"],
        ["endpoint", "show", "credit"],
        ["endpoint", "invoke", "credit", "--request-file", str(SAMPLE)],
        ["endpoint", "run-local", "credit"],
        ["batch", "invoke", "credit", "--input", "s3://b/in/"],
        ["batch", "jobs", "list"],
        ["batch", "jobs", "show", "j"],
        ["batch", "jobs", "logs", "j"],
        ["batch", "jobs", "cancel", "j"],
        ["batch", "jobs", "resume", "j"],
        ["batch", "run-local", "j"],
    ],
    ids=lambda v: " ".join(v[:3]),
)
def test_an_unreachable_api_server_is_one_line_and_exit_1(
    closed_server: tuple[str, Path], verb: list[str]
) -> None:
    server, kubeconfig = closed_server
    run = mlkube(*verb, "--kubeconfig", str(kubeconfig))
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: cannot reach the API server at {server}: "), lines[0]
    assert "Connection refused" in lines[0]


def test_a_missing_kubeconfig_is_one_line(tmp_path: Path) -> None:
    run = mlkube("endpoint", "list", "--kubeconfig", str(tmp_path / "nope"))
    assert run.returncode == 1
    assert run.stderr.startswith("error: cannot load Kubernetes configuration")
    assert "Traceback" not in run.stderr


def test_a_directory_as_request_file_is_one_line(
    closed_server: tuple[str, Path], tmp_path: Path
) -> None:
    _, kubeconfig = closed_server
    run = mlkube("endpoint", "invoke", "credit", "--request-file", str(tmp_path),
                 "--kubeconfig", str(kubeconfig))  # fmt: skip
    assert run.returncode == 1
    assert (
        run.stderr.strip() == f"error: request file '{tmp_path}' is a directory: pass a JSON file"
    )
