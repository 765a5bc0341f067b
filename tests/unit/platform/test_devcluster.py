from __future__ import annotations

from pathlib import Path

import yaml

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


def test_command_mentions_reads_the_live_command_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from mlkube.devcluster.procs import command_mentions

    marker = str(tmp_path / "marker")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        # Right after a vfork+exec the new command line may not be mapped yet: poll briefly.
        deadline = time.monotonic() + 5
        while not command_mentions(child.pid, marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert command_mentions(child.pid, marker)
        assert not command_mentions(child.pid, str(tmp_path / "other"))
        assert not command_mentions(os.getpid(), marker)
    finally:
        child.kill()
        child.wait()
    assert not command_mentions(child.pid, marker)


def test_node_leases_fit_four_renewals_into_the_grace_period() -> None:
    from mlkube.devcluster.kwok import DEFAULT_LEASE_SECONDS, lease_seconds

    assert lease_seconds(None) == DEFAULT_LEASE_SECONDS == 40  # a kubelet's, vs 50 s grace
    assert lease_seconds(20) == 20  # kwok renews every 5 s
    assert lease_seconds(2) == 4
    assert lease_seconds(300) == 40


def test_pods_set_not_ready_by_the_node_lifecycle_controller_recover() -> None:
    from mlkube.devcluster.kwok import build_pod_recover_stage

    stage = build_pod_recover_stage()
    assert stage["kind"] == "Stage" and stage["spec"]["resourceRef"]["kind"] == "Pod"
    selector = {e["key"]: e for e in stage["spec"]["selector"]["matchExpressions"]}
    assert selector[".metadata.deletionTimestamp"]["operator"] == "DoesNotExist"
    assert selector[".status.phase"]["values"] == ["Running"]
    ready = yaml.safe_load(stage["spec"]["next"]["statusTemplate"].replace("{{ $now := Now }}", "")
                           .replace("{{ $now | Quote }}", '"t"'))  # fmt: skip
    assert {c["type"]: c["status"] for c in ready["conditions"]} == {
        "Ready": "True", "ContainersReady": "True"}  # fmt: skip


def test_the_launcher_passes_the_grace_period_and_leases(tmp_path: Path) -> None:
    from mlkube.devcluster.cluster import Cluster

    assert Cluster(tmp_path).node_lease_seconds == 40
    cluster = Cluster(tmp_path, node_monitor_grace_period=20)
    assert cluster.node_lease_seconds == 20
