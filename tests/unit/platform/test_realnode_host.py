"""Teardown removes only what the real node created: empty directories and sockets."""

from __future__ import annotations

import socket
from pathlib import Path

from mlkube.devcluster.realnode_host import remove_created_dirs


def _socket_at(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def test_directories_with_only_sockets_are_removed(tmp_path: Path) -> None:
    created = tmp_path / "kubelet"
    (created / "device-plugins").mkdir(parents=True)
    _socket_at(created / "device-plugins" / "k.sock")
    assert remove_created_dirs([str(created)]) == []
    assert not created.exists()


def test_a_directory_someone_else_now_uses_is_left(tmp_path: Path) -> None:
    created = tmp_path / "cni"
    (created / "results").mkdir(parents=True)
    (created / "results" / "other-runtime.json").write_text("{}")
    problems = remove_created_dirs([str(created)])
    assert problems == [f"{created} holds files now; left in place"]
    assert (created / "results" / "other-runtime.json").exists()


def test_missing_directories_are_fine(tmp_path: Path) -> None:
    assert remove_created_dirs([str(tmp_path / "gone")]) == []
