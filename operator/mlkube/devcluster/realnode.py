"""A real node for the dev cluster: containerd, kubelet, kube-proxy and CoreDNS as processes
on this machine, so mlkube's containers actually run (kwok only pretends).

Everything is installed by the project's own scripts (hack/node/packages.sh, hack/node/build.sh,
hack/images/build), cached by content. The node's files live under <workdir>/node; its
network (bridge, per-interface forwarding, iptables) is in realnode_net. `stop()` undoes it
all: pods removed through the CRI, processes stopped, mounts and cgroups released, KUBE-*
chains and the bridge deleted. One real node per machine (the bridge and CIDR are fixed).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlkube.devcluster import (
    buildsupport,
    procs,
    realnode_host,
    realnode_net,
    realnode_store,
    registry,
)
from mlkube.devcluster.cluster import REPO_ROOT, Cluster, ClusterError
from mlkube.devcluster.pki import new_token
from mlkube.devcluster.realnode_config import (
    APISERVER_PORT,
    BRIDGE_ADDRESS,
    BUILD_ADDRESSES,
    NODE_NAME,
    NodePaths,
    build_apiserver_endpoints,
    build_cni_conflist,
    build_containerd_config,
    build_corefile,
    build_kubelet_config,
    kube_proxy_args,
)
from mlkube.devcluster.realnode_env import operator_env as operator_env

HACK = REPO_ROOT / "hack"
DEFAULT_IMAGES = ("pause", "serving", "operator")
# Stop order: the kubelet first (it would restart what we remove), containerd last.
PROCESSES = ("kubelet", "kube-proxy", "coredns", "apiserver-forwarder", "minio",
             buildsupport.REGISTRY_PROCESS, buildsupport.MIRROR_PROCESS, "containerd")  # fmt: skip


class RealNodeError(ClusterError):
    """The real node cannot run here, or failed to start."""


def unsupported_reason() -> str | None:
    """Why this machine cannot run the real node (None when it can)."""
    if platform.system() != "Linux":
        return f"the real node needs Linux (this is {platform.system()})"
    if os.geteuid() != 0:
        return "the real node needs root (containerd, bridge, iptables)"
    if not shutil.which("dpkg-query") or not shutil.which("apt-get"):
        return "the real node installs its runtime with apt-get (Debian/Ubuntu only)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no /sys/fs/cgroup"
    return None


@dataclass
class NodeState:
    pids: dict[str, int] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    pushed: dict[str, str] = field(default_factory=dict)  # serving images in the registry
    bin_dir: str = ""
    created_dirs: list[str] = field(default_factory=list)


class RealNode:
    """The real node of the dev cluster rooted at `cluster.workdir`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.paths = NodePaths(cluster.workdir / "node")
        self.state = self._load()
        self._lock = threading.Lock()

    @property
    def images(self) -> dict[str, str]:
        return dict(self.state.images)

    def running(self) -> bool:
        return bool(self.state.pids) and all(procs.alive(p) for p in self.state.pids.values())

    # -- start -------------------------------------------------------------------------
    def start(
        self,
        images: tuple[str, ...] = DEFAULT_IMAGES,
        timeout: float = 120.0,
        variants: tuple[str, ...] = buildsupport.VARIANT_TARGETS,
    ) -> None:
        """`variants`: serving-image variants built for the curated environments, pushed to
        the dev registry only (not imported: the node pulls them by digest)."""
        reason = unsupported_reason()
        if reason:
            raise RealNodeError(reason)
        if realnode_net.bridge_exists() and not self.state.pids:
            raise RealNodeError(
                "another real node seems to run on this machine (bridge exists); "
                "run `mlkube dev down` in its workdir first"
            )
        _script([str(HACK / "node" / "packages.sh")])
        bin_dir = Path(_script(["bash", str(HACK / "node" / "build.sh")])[-1])
        refs = _parse_refs(_script([str(HACK / "images" / "build"), *images, *variants]))
        self.state = NodeState(
            images=refs, bin_dir=str(bin_dir), created_dirs=realnode_host.absent_fixed_dirs()
        )
        self._save()
        try:
            realnode_net.setup()
            self._start_containerd(refs["pause"])
            _script([str(HACK / "images" / "build"), "--import", self._socket(), *images])
            self._start_kubelet(bin_dir)
            self._wait("node Ready", time.monotonic() + timeout, self._node_ready)
            self._start_services(bin_dir)
            for obj in build_apiserver_endpoints():
                self.cluster_apply(obj)
            self._start_store()
            self._start_build_support()
        except Exception as err:
            logs = "\n".join(
                f"--- {name} ---\n{procs.tail(self.cluster.logs / f'{name}.log')}"
                for name in self.state.pids
            )
            self.stop()
            raise RealNodeError(f"real node failed to start ({err}); logs:\n{logs}") from None

    def socket(self) -> str:
        return self._socket()

    def _socket(self) -> str:
        return str(self.paths.containerd_socket)

    def _start_containerd(self, sandbox_image: str) -> None:
        p = self.paths
        for d in (p.containerd_root, p.containerd_state, p.cni_conf_dir, p.cni_data_dir):
            d.mkdir(parents=True, exist_ok=True)
        p.containerd_config.write_text(build_containerd_config(p, sandbox_image))
        (p.cni_conf_dir / "10-mlkube.conflist").write_text(json.dumps(build_cni_conflist(p)))
        registry.write_hosts(p.registry_hosts_dir, BUILD_ADDRESSES.registry)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        self._spawn("containerd", ["containerd", "--config", str(p.containerd_config)], env)
        ctr = ["ctr", "-a", self._socket(), "version"]
        self._wait(
            "containerd",
            time.monotonic() + 30,
            lambda: subprocess.run(ctr, capture_output=True, check=False).returncode == 0,
        )

    def _start_kubelet(self, bin_dir: Path) -> None:
        p = self.paths
        p.kubelet_root.mkdir(parents=True, exist_ok=True)
        config = build_kubelet_config(p, procs.free_port())
        p.kubelet_config.write_text(yaml.safe_dump(config))
        self._spawn(
            "kubelet",
            [
                str(bin_dir / "kubelet"),
                f"--config={p.kubelet_config}",
                f"--kubeconfig={self.cluster.kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={BRIDGE_ADDRESS}",
                f"--root-dir={p.kubelet_root}",
                f"--cert-dir={p.kubelet_root / 'pki'}",
                "--v=1",
            ],
        )

    def _start_services(self, bin_dir: Path) -> None:
        kc = self.cluster.kubeconfig
        ports = [procs.free_port() for _ in range(4)]
        self._spawn("kube-proxy", [str(bin_dir / "kube-proxy"), *kube_proxy_args(kc, *ports[:2])])
        self.paths.corefile.write_text(build_corefile(kc, ports[2], ports[3]))
        self._spawn("coredns", [str(bin_dir / "coredns"), "-conf", str(self.paths.corefile)])
        api = ["127.0.0.1", str(self.cluster.state.ports["apiserver"])]
        forward = [sys.executable, "-m", "mlkube.devcluster.tcpforward"]
        forward += [BRIDGE_ADDRESS, str(APISERVER_PORT), *api, str(self.paths.root)]
        self._spawn("apiserver-forwarder", forward)

    def _start_store(self) -> None:
        secret_file = self.paths.root / "store-secret"
        if not secret_file.exists():
            secret_file.write_text(new_token())
            secret_file.chmod(0o600)
        secret = secret_file.read_text().strip()
        binary = realnode_store.minio_binary(HACK)
        data = self.paths.root / "store"
        data.mkdir(parents=True, exist_ok=True)
        argv = realnode_store.minio_argv(binary, data)
        self._spawn("minio", argv, realnode_store.minio_env(secret))
        self._wait("model store", time.monotonic() + 60, realnode_store.store_ready)
        realnode_store.create_bucket(secret)
        self.cluster_apply(realnode_store.build_storage_secret("default", secret))

    def _start_build_support(self) -> None:
        """Registry + package mirror on the bridge; the serving images pushed into it."""
        buildsupport.start(self._spawn, HACK, self.paths.root, BUILD_ADDRESSES)
        # Packaging builds fetch models in the build namespace with the store's credentials.
        self.cluster.request("POST", "/api/v1/namespaces", buildsupport.build_namespace())
        secret = (self.paths.root / "store-secret").read_text().strip()
        self.cluster_apply(
            realnode_store.build_storage_secret(buildsupport.BUILD_NAMESPACE, secret)
        )
        self.state.pushed = buildsupport.push_images(self.state.images, BUILD_ADDRESSES.registry)
        self._save()

    def store_env(self) -> dict[str, str]:
        """S3 client settings for the node's model store (empty before the node started)."""
        secret_file = self.paths.root / "store-secret"
        if "minio" not in self.state.pids or not secret_file.exists():
            return {}
        return realnode_store.client_env(secret_file.read_text().strip())

    def cluster_apply(self, obj: dict[str, Any]) -> None:
        api = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        plural = {"Endpoints": "endpoints", "EndpointSlice": "endpointslices", "Secret": "secrets"}[
            obj["kind"]
        ]
        base = f"{api}/namespaces/{obj['metadata']['namespace']}/{plural}"
        status, payload = self.cluster.request("POST", base, obj)
        if status == 409:
            path = f"{base}/{obj['metadata']['name']}"
            status, payload = self.cluster.request("PUT", path, obj)
        if status not in (200, 201):
            what = f"{obj['kind']} {obj['metadata']['name']}"
            raise RealNodeError(f"writing {what}: {status} {payload.get('message', '')}")

    def _node_ready(self) -> bool:
        status, node = self.cluster.request("GET", f"/api/v1/nodes/{NODE_NAME}")
        conds = node.get("status", {}).get("conditions", []) if status == 200 else []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    # -- stop --------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop the node and restore the machine; return what could not be cleaned up."""
        problems: list[str] = []
        pids = self.state.pids
        self._stop_process("kubelet")
        crictl = Path(self.state.bin_dir) / "crictl"
        if "containerd" in pids and procs.alive(pids["containerd"]) and crictl.exists():
            problems += realnode_host.remove_pods(crictl, self._socket())
        # The services are independent of each other: stop them together, containerd last.
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self._stop_process, PROCESSES[1:-1]))
        self._stop_process(PROCESSES[-1])
        problems += realnode_host.kill_shims(self._socket())
        problems += realnode_host.unmount_under(self.paths.root)
        problems += realnode_host.remove_kubepods_cgroups()
        problems += realnode_net.teardown()
        problems += realnode_host.remove_created_dirs(self.state.created_dirs)
        self.state.pids = {}
        self._save()
        return problems

    def _stop_process(self, name: str) -> None:
        pid = self.state.pids.get(name)
        if pid and procs.command_mentions(pid, str(self.cluster.workdir)):
            procs.stop(pid)
        with self._lock:
            self.state.pids.pop(name, None)
            self._save()

    # -- helpers -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "processes": {n: procs.alive(p) for n, p in self.state.pids.items()},
            "images": self.state.images,
            "leftovers": [] if self.state.pids else realnode_net.leftovers(),
        }

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.state.pids[name] = procs.spawn(name, argv, self.cluster.logs, env)
        self._save()

    def _wait(self, what: str, deadline: float, check: Any) -> None:
        while time.monotonic() < deadline:
            for name, pid in self.state.pids.items():
                if not procs.alive(pid):
                    raise RealNodeError(f"{name} exited while waiting for {what}")
            if check():
                return
            time.sleep(0.2)
        raise RealNodeError(f"timed out waiting for {what}")

    def _load(self) -> NodeState:
        try:
            return NodeState(**json.loads(self.paths.state_file.read_text()))
        except FileNotFoundError:
            return NodeState()

    def _save(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.state_file.write_text(json.dumps(asdict(self.state), indent=2))


def _script(argv: list[str]) -> list[str]:
    """Run a hack/ script (progress on our stderr); return its stdout lines."""
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise RealNodeError(f"{' '.join(argv)} failed (exit {result.returncode}), see above")
    return result.stdout.strip().splitlines()


def _parse_refs(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines if "=" in line)
