from __future__ import annotations

from pathlib import Path

from mlkube.devcluster.cluster import build_fake_node, build_kubeconfig
from mlkube.devcluster.pki import generate_pki
from mlkube.devcluster.procs import free_port


def test_kubeconfig_points_at_server_with_ca_and_token() -> None:
    kc = build_kubeconfig("https://127.0.0.1:6443", Path("/x/ca.crt"), "alice", "tok")
    assert kc["clusters"][0]["cluster"] == {
        "server": "https://127.0.0.1:6443",
        "certificate-authority": "/x/ca.crt",
    }
    assert kc["users"] == [{"name": "alice", "user": {"token": "tok"}}]
    assert kc["current-context"] == "alice@mlkube-dev"


def test_fake_node_is_managed_by_kwok() -> None:
    node = build_fake_node("kwok-0")
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["status"]["allocatable"]["pods"] == "110"


def test_pki_files_and_permissions(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path)
    assert pki.ca_cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert pki.serving_key.stat().st_mode & 0o777 == 0o600
    assert pki.sa_private.stat().st_mode & 0o777 == 0o600


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
