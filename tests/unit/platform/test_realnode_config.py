"""The real node's configuration keeps pod traffic on this machine and works on these hosts."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from cryptography import x509

from mlkube.devcluster.pki import generate_pki
from mlkube.devcluster.realnode import _parse_refs
from mlkube.devcluster.realnode_config import (
    BRIDGE,
    BRIDGE_ADDRESS,
    POD_CIDR,
    SERVICE_CIDR,
    NodePaths,
    build_apiserver_endpoints,
    build_cni_conflist,
    build_containerd_config,
    build_corefile,
    build_kubelet_config,
    kube_proxy_args,
)
from mlkube.devcluster.realnode_net import OUR_RULES

PATHS = NodePaths(Path("/w/node"))


def test_containerd_is_private_and_restricts_oom_score_adj() -> None:
    cfg = tomllib.loads(build_containerd_config(PATHS, "localhost/mlkube-pause:abc"))
    assert cfg["root"] == "/w/node/containerd/root"
    assert cfg["state"] == "/w/node/containerd/state"
    assert cfg["grpc"]["address"] == "/w/node/containerd/containerd.sock"
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["disable_apparmor"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == "localhost/mlkube-pause:abc"
    assert cri["cni"] == {
        "bin_dir": "/usr/lib/cni",
        "conf_dir": "/w/node/cni/net.d",
        "max_conf_num": 1,
    }


def test_cni_never_gateways_or_masquerades_and_routes_only_services() -> None:
    plugin = build_cni_conflist(PATHS)["plugins"][0]
    # isGateway would turn on the global net.ipv4.ip_forward.
    assert plugin["isGateway"] is False
    assert plugin["ipMasq"] is False
    assert plugin["bridge"] == BRIDGE
    assert plugin["ipam"]["routes"] == [{"dst": SERVICE_CIDR, "gw": BRIDGE_ADDRESS}]
    assert plugin["ipam"]["dataDir"] == "/w/node/cni/ipam"


def test_kubelet_uses_cluster_dns_only_and_fits_this_host() -> None:
    cfg = build_kubelet_config(PATHS, 12345)
    assert cfg["resolvConf"] == ""
    assert cfg["clusterDNS"] == [BRIDGE_ADDRESS]
    assert cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["failCgroupV1"] is False
    assert cfg["readOnlyPort"] == 0
    assert cfg["address"] == BRIDGE_ADDRESS
    assert cfg["podCIDR"] == POD_CIDR
    assert cfg["containerRuntimeEndpoint"] == "unix:///w/node/containerd/containerd.sock"
    assert cfg["syncFrequency"] == "10s"  # router ConfigMap changes reach pods in seconds


def test_coredns_has_no_upstream() -> None:
    corefile = build_corefile(Path("/w/kubeconfig"), 1, 2)
    assert "forward" not in corefile
    assert f"bind {BRIDGE_ADDRESS}" in corefile
    assert corefile.startswith("cluster.local:53 ")


def test_kube_proxy_leaves_conntrack_sysctls_alone() -> None:
    args = kube_proxy_args(Path("/w/kc"), 1, 2)
    assert "--conntrack-max-per-core=0" in args
    assert "--healthz-bind-address=127.0.0.1:1" in args
    assert "--metrics-bind-address=127.0.0.1:2" in args


def test_rules_drop_everything_leaving_or_entering_the_bridge_by_forwarding() -> None:
    forward = [m for table, chain, m in OUR_RULES if (table, chain) == ("mangle", "FORWARD")]
    assert ["-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"] in forward
    assert ["!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP"] in forward


def test_kubernetes_service_endpoints_point_at_the_bridge() -> None:
    endpoints, slice_ = build_apiserver_endpoints()
    assert endpoints["subsets"][0]["addresses"] == [{"ip": BRIDGE_ADDRESS}]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert slice_["endpoints"][0]["addresses"] == [BRIDGE_ADDRESS]
    assert ipaddress.ip_address(BRIDGE_ADDRESS) in ipaddress.ip_network(POD_CIDR)


def test_apiserver_certificate_names_the_kubernetes_service_ip(tmp_path: Path) -> None:
    cert = x509.load_pem_x509_certificate(generate_pki(tmp_path).serving_cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.96.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("10.96.0.1") in ipaddress.ip_network(SERVICE_CIDR)


def test_image_refs_parse_from_the_build_script_output() -> None:
    lines = ["noise", "pause=localhost/mlkube-pause:1", "serving=localhost/mlkube-serving:2"]
    assert _parse_refs(lines) == {
        "pause": "localhost/mlkube-pause:1",
        "serving": "localhost/mlkube-serving:2",
    }
