"""Configuration of the real dev node, built as data (no I/O): containerd, CNI, kubelet,
kube-proxy and CoreDNS settings that keep every packet on this machine.

Why these values (measured, see docs/dev-cluster.md): runc cannot set the pause container's
negative oom_score_adj here (restrict_oom_score_adj), there is no AppArmor and no systemd
(cgroupfs driver on cgroup v1), the pod network is a bridge this launcher creates and nothing
leaves it (no gateway, no masquerade, no default route in pods), and CoreDNS answers only
cluster.local (no upstream).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkube.devcluster.buildsupport import Addresses

BRIDGE = "mlkube0"
POD_CIDR = "10.86.0.0/24"
BRIDGE_ADDRESS = "10.86.0.1"  # the node's InternalIP: CoreDNS, kubelet, API server forwarder
BRIDGE_PREFIX = 24
SERVICE_CIDR = "10.96.0.0/16"  # kube-apiserver --service-cluster-ip-range
NODE_NAME = "mlkube-node"
APISERVER_PORT = 6443  # the forwarder pods reach the API server through (Service `kubernetes`)
KUBELET_PORT = 10250
REGISTRY_PORT = 5000  # the dev OCI registry on the bridge (docs/environments.md §8)
MIRROR_PORT = 5080  # the package mirror (wheelhouse + flat apt repository) on the bridge
BUILD_ADDRESSES = Addresses(BRIDGE_ADDRESS, REGISTRY_PORT, MIRROR_PORT)
CNI_NETWORK = "mlkube-dev"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
# Every iptables rule the launcher adds carries this comment, so teardown finds exactly those.
RULE_COMMENT = "mlkube-dev-node"


@dataclass(frozen=True)
class NodePaths:
    """Where one real node keeps its files: all under <cluster workdir>/node."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def registry_hosts_dir(self) -> Path:
        """containerd's config_path: <registry host:port>/hosts.toml."""
        return self.root / "containerd" / "certs.d"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet-config.yaml"

    @property
    def corefile(self) -> Path:
        return self.root / "Corefile"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"


def _toml(value: Any) -> str:
    return json.dumps(value)  # TOML basic strings, booleans and arrays of strings are JSON-shaped


def build_containerd_config(paths: NodePaths, sandbox_image: str) -> str:
    """containerd 1.6 (config version 2) with a private root, state and socket."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = {_toml(str(paths.containerd_root))}
state = {_toml(str(paths.containerd_state))}
# Nothing of ours under /opt or next to a system containerd.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = {_toml(str(paths.containerd_socket))}

[{cri}]
  sandbox_image = {_toml(sandbox_image)}
  # runc cannot write the pause container's negative oom_score_adj on these machines.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  # Network namespaces under our state dir, not /var/run/netns shared with the machine.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

# Registry hosts (the dev registry over plain HTTP): hosts.toml files, read on each pull.
[{cri}.registry]
  config_path = {_toml(str(paths.registry_hosts_dir))}

[{cri}.cni]
  bin_dir = {_toml(CNI_BIN_DIR)}
  conf_dir = {_toml(str(paths.cni_conf_dir))}
  max_conf_num = 1

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
"""


def build_cni_conflist(paths: NodePaths) -> dict[str, Any]:
    """The bridge plugin on our bridge: no gateway (that would turn on global ip_forward), no
    masquerade, and one route - to Services via the bridge address; pods get no default route."""
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.cni_data_dir),
                    "ranges": [[{"subnet": POD_CIDR, "rangeStart": "10.86.0.10"}]],
                    "routes": [{"dst": SERVICE_CIDR, "gw": BRIDGE_ADDRESS}],
                },
            }
        ],
    }


def build_kubelet_config(paths: NodePaths, healthz_port: int) -> dict[str, Any]:
    """KubeletConfiguration for a root-without-CAP_SYS_RESOURCE, cgroup v1, systemd-less host.

    Anonymous + AlwaysAllow because the dev API server has no kubelet client certificate; the
    kubelet listens on the bridge address only and pods are refused on its port (see
    realnode_net), so only this machine's processes reach it.
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": BRIDGE_ADDRESS,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "authentication": {
            "anonymous": {"enabled": True},
            "webhook": {"enabled": False},
        },
        "authorization": {"mode": "AlwaysAllow"},
        # Pods never get the machine's resolver: cluster DNS only.
        "resolvConf": "",
        "clusterDNS": [BRIDGE_ADDRESS],
        "clusterDomain": "cluster.local",
        "podCIDR": POD_CIDR,
        "maxPods": 60,
        # Big images on a small, shared disk: do not evict or garbage-collect early.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "serializeImagePulls": False,
        # The node runs imported images (pull policy Never) and pulls environment images from
        # the dev registry. Once an image ID has a pull record (e.g. the serving image pulled
        # by digest as the build tools image), kubelet 1.36 would refuse the imported tag of
        # the same ID under Never ("not present"): no credential checks on this dev node.
        "imagePullCredentialsVerificationPolicy": "NeverVerify",
        "staticPodPath": "",
        # Container logs under our directory, not the machine's /var/log/pods.
        "podLogsDir": str(paths.root / "pod-logs"),
        "nodeStatusReportFrequency": "10s",
        # A pod's mounted ConfigMaps are refreshed on its periodic sync (default 1 min): a
        # router traffic change (a pipeline's canary) then waits for it. 10 s on this small node.
        "syncFrequency": "10s",
    }


def build_corefile(kubeconfig: Path, health_port: int, ready_port: int) -> str:
    """cluster.local from the API server; every other name is refused (no forward plugin)."""
    return f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {BRIDGE_ADDRESS}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        ttl 5
    }}
    cache 5
}}
"""


def kube_proxy_args(kubeconfig: Path, healthz_port: int, metrics_port: int) -> list[str]:
    """iptables mode; conntrack sysctls left alone (max-per-core 0, zero timeouts)."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={NODE_NAME}",
        "--proxy-mode=iptables",
        f"--cluster-cidr={POD_CIDR}",
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
        "--iptables-localhost-nodeports=false",
        "--nodeport-addresses=primary",
        f"--healthz-bind-address=127.0.0.1:{healthz_port}",
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        "--v=1",
    ]


def build_apiserver_endpoints() -> list[dict[str, Any]]:
    """Endpoints + EndpointSlice of the `kubernetes` Service: the forwarder on the bridge (the
    API server itself stays on 127.0.0.1 and its endpoint reconciler is off)."""
    port = {"name": "https", "port": APISERVER_PORT, "protocol": "TCP"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                # We write the EndpointSlice ourselves; no mirrored duplicate.
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": [{"addresses": [{"ip": BRIDGE_ADDRESS}], "ports": [port]}],
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {
                    "kubernetes.io/service-name": "kubernetes",
                    "endpointslice.kubernetes.io/managed-by": "mlkube-dev",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [BRIDGE_ADDRESS], "conditions": {"ready": True}}],
            "ports": [port],
        },
    ]
