"""What `mlkube dev up` prints and `mlkube dev env` sets up (issue 18): the printed lines start
with the `eval` line a fresh shell needs, name the workdir unless it is the default, and the
real node's store becomes the kubeconfig's default store with the node's settings."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from mlkube.cli import dev
from mlkube.devcluster import Cluster
from mlkube.devcluster.kubectl import path_dirs, tools_dir


def test_eval_line_names_a_non_default_workdir(tmp_path: Path) -> None:
    line = dev.env_command(tmp_path / "dev")
    assert line.startswith('eval "$(') and line.endswith(f' dev env --workdir {tmp_path}/dev)"')
    assert "--workdir" not in dev.env_command(dev.DEFAULT_WORKDIR)


def test_printed_block_starts_with_the_eval_line(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "dev")
    text = dev.ready_message(cluster, "s3://mlkube-dev", 1.0, tmp_path / "dev")
    try_block = text.split("Try (from ", 1)[1].split("\n", 1)[1].split("\n\n", 1)[0]
    first = try_block.splitlines()[0].strip()
    assert first.startswith(dev.env_command(tmp_path / "dev"))
    assert "default artifact store: s3://mlkube-dev" in text


def test_env_lines_set_kubeconfig_and_path_for_a_fresh_shell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval` of what `dev env` prints, in bash, finds the dev kubeconfig and the venv first."""
    workdir = tmp_path / "dev"
    workdir.mkdir()
    assert dev.env(argparse.Namespace(workdir=workdir)) == 1  # no cluster yet: says so
    assert "run `make dev` first" in capsys.readouterr().err
    (workdir / "kubeconfig").write_text("{}")
    assert dev.env(argparse.Namespace(workdir=workdir)) == 0
    script = capsys.readouterr().out + 'echo "$KUBECONFIG"; echo "${PATH%%:*}"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    kubeconfig, first = out.stdout.split()
    assert kubeconfig == str(workdir / "kubeconfig")
    assert first == path_dirs(workdir)[0]
    assert str(tools_dir(workdir)) in path_dirs(workdir)


def test_real_node_store_is_the_default_store() -> None:
    env = {
        "MLKUBE_S3_ENDPOINT_URL": "http://10.86.0.1:9000",
        "AWS_ACCESS_KEY_ID": "mlkube-dev",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLKUBE_STORAGE_SECRET": "mlkube-dev-storage",
    }
    store = dev.realnode_store_default(env)
    assert store.uri == "s3://mlkube-dev"
    assert store.client_env() == {k: v for k, v in env.items() if k != "MLKUBE_STORAGE_SECRET"}
