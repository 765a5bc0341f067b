"""Start, stop and describe a local control plane (see package docstring).

State (ports, pids, tokens) lives in <workdir>/state.json so `mlkube dev down|status`
works from another process than the one that started the cluster.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlkube.devcluster import kwok, procs
from mlkube.devcluster.pki import generate_pki, new_token

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
OPERATOR_USER = "system:serviceaccount:mlkube-system:mlkube-operator"
# Static-token users: admin and the control-plane components are cluster admins (this is a
# throwaway dev cluster); alice and bob have no rights until a test binds some; the operator
# identity lets tests check the chart's least-privilege RBAC.
USERS: dict[str, tuple[str, str]] = {
    "admin": ("admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", "system:masters"),
    "scheduler": ("system:kube-scheduler", "system:masters"),
    "kwok": ("kwok", "system:masters"),
    "alice": ("alice", "mlkube:users"),
    "bob": ("bob", "mlkube:users"),
    "operator": (OPERATOR_USER, "system:serviceaccounts,system:serviceaccounts:mlkube-system"),
}


class ClusterError(RuntimeError):
    """The control plane could not be built, started or reached."""


def build_binaries() -> Path:
    """Build (or reuse from cache) the control-plane binaries; return their directory."""
    override = os.environ.get("MLKUBE_CONTROLPLANE_BIN")
    if override:
        return Path(override)
    if not BUILD_SCRIPT.exists():
        raise ClusterError(f"{BUILD_SCRIPT} not found: run from a source checkout of mlkube")
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise ClusterError(f"control-plane build failed (exit {result.returncode}), see above")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class ScaleOptions:
    """Settings for clusters that hold thousands of objects (bench/operator)."""

    node_pods: int = 110  # pods per fake node (cpu and memory grow with it)
    client_qps: int = 0  # controller-manager and scheduler API QPS (burst 2x); 0: defaults
    audit_users: tuple[str, ...] = ()  # users whose requests the audit log records


def build_audit_policy(users: tuple[str, ...]) -> dict[str, Any]:
    """Metadata (verb, resource, user, status) of `users`' requests, once each (ResponseComplete
    or Panic), nothing of anyone else's."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted"],
        "rules": [{"level": "Metadata", "users": list(users)}, {"level": "None"}],
    }


@dataclass
class State:
    server: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


class Cluster:
    """One local control plane rooted at `workdir`."""

    def __init__(
        self,
        workdir: Path,
        bin_dir: Path | None = None,
        nodes: int = 2,
        node_monitor_grace_period: float | None = None,
        node_lease_seconds: int | None = None,
        scale: ScaleOptions | None = None,
    ) -> None:
        """`node_monitor_grace_period`: seconds without a node heartbeat before the
        controller-manager declares the node NotReady (None: its default, 50 s); tests shorten
        it to prove heartbeats keep up. `node_lease_seconds` overrides the kwok node Lease
        duration derived from it (0 turns Leases off, as before they were used). `scale`:
        bigger fake nodes, faster control-plane clients and an audit log (benchmarks)."""
        self.workdir = workdir.resolve()
        self.bin_dir = bin_dir
        self.nodes = nodes
        self.node_monitor_grace_period = node_monitor_grace_period
        self.node_lease_seconds = (
            kwok.lease_seconds(node_monitor_grace_period)
            if node_lease_seconds is None
            else node_lease_seconds
        )
        self.scale = scale or ScaleOptions()
        self.state = self._load_state()

    # -- paths -----------------------------------------------------------------------
    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_cert(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def audit_log(self) -> Path:
        """JSON lines, one per request of the users in `ScaleOptions.audit_users`."""
        return self.logs / "audit.log"

    def kubeconfig_for(self, user: str) -> Path:
        return self.kubeconfig if user == "admin" else self.workdir / f"kubeconfig-{user}"

    def token(self, user: str) -> str:
        return self.state.tokens[user]

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        if self.running():
            raise ClusterError(f"a cluster is already running in {self.workdir}")
        bin_dir = self.bin_dir or build_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = generate_pki(self.workdir / "pki")
        ports = {
            name: procs.free_port()
            for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")
        }
        self.state = State(
            server=f"https://127.0.0.1:{ports['apiserver']}",
            ports=ports,
            tokens={user: new_token() for user in USERS},
        )
        self._write_tokens_and_kubeconfigs()
        deadline = time.monotonic() + timeout
        try:
            self._start_etcd(bin_dir)
            self._start_apiserver(
                bin_dir, pki.serving_cert, pki.serving_key, pki.sa_public, pki.sa_private
            )
            self._wait("kube-apiserver", deadline, self._apiserver_ready)
            self._start_controllers(bin_dir, pki.sa_private)
            self._install_kwok_crds(deadline)
            self._start_kwok(bin_dir)
            self._create_nodes()
            self._wait("default service account", deadline, self._default_sa_exists)
            self._wait("nodes Ready", deadline, self._nodes_ready)
        except Exception:
            logs = "\n".join(
                f"--- {name} ---\n{procs.tail(self.logs / f'{name}.log')}"
                for name in self.state.pids
            )
            self.stop()
            raise ClusterError(f"control plane failed to start; logs:\n{logs}") from None

    def stop(self) -> None:
        for name in reversed(list(self.state.pids)):
            pid = self.state.pids[name]
            # After a reboot a recorded pid may belong to someone else: every process of ours
            # names the workdir on its command line (data dir, kubeconfig, token file).
            if procs.command_mentions(pid, str(self.workdir)):
                procs.stop(pid)
        self.state.pids = {}
        self._save_state()

    def running(self) -> bool:
        return bool(self.state.pids) and all(procs.alive(p) for p in self.state.pids.values())

    def status(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "server": self.state.server,
            "kubeconfig": str(self.kubeconfig),
            "processes": {n: procs.alive(p) for n, p in self.state.pids.items()},
        }

    # -- processes -------------------------------------------------------------------
    def add_process(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Run an extra process (e.g. the operator) that `stop()` and `mlkube dev down` end."""
        self.state.pids[name] = procs.spawn(name, argv, self.logs, env)
        self._save_state()
        return self.state.pids[name]

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.state.pids[name] = procs.spawn(name, argv, self.logs)
        self._save_state()

    def _start_etcd(self, bin_dir: Path) -> None:
        p = self.state.ports
        self._spawn(
            "etcd",
            [
                str(bin_dir / "etcd"),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                f"--initial-cluster=default=http://127.0.0.1:{p['etcd-peer']}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(
        self, bin_dir: Path, cert: Path, key: Path, sa_pub: Path, sa_key: Path
    ) -> None:
        p = self.state.ports
        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={p['apiserver']}",
                f"--tls-cert-file={cert}",
                f"--tls-private-key-file={key}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--endpoint-reconciler-type=none",
                # logs/exec/port-forward reach a kubelet by its IP, not a DNS name of the node.
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--profiling=false",
                *self._audit_flags(),
                "--v=1",
            ],
        )

    def _audit_flags(self) -> list[str]:
        if not self.scale.audit_users:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(build_audit_policy(self.scale.audit_users)))
        self.logs.mkdir(parents=True, exist_ok=True)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxbackup=0",
            "--audit-log-maxsize=0",
        ]

    def _client_flags(self) -> list[str]:
        qps = self.scale.client_qps
        return [f"--kube-api-qps={qps}", f"--kube-api-burst={2 * qps}"] if qps else []

    def _start_controllers(self, bin_dir: Path, sa_key: Path) -> None:
        p = self.state.ports
        kcm_kc = self.kubeconfig_for("controller-manager")
        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kcm_kc}",
                f"--authentication-kubeconfig={kcm_kc}",
                f"--authorization-kubeconfig={kcm_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={p['kcm']}",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={self.ca_cert}",
                "--leader-elect=false",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
                *self._client_flags(),
                *(
                    [f"--node-monitor-grace-period={self.node_monitor_grace_period:g}s"]
                    if self.node_monitor_grace_period is not None
                    else []
                ),
                "--v=1",
            ],
        )
        sched_kc = self.kubeconfig_for("scheduler")
        self._spawn(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={sched_kc}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                "--bind-address=127.0.0.1",
                f"--secure-port={p['scheduler']}",
                "--leader-elect=false",
                *self._client_flags(),
                "--v=1",
            ],
        )

    def _start_kwok(self, bin_dir: Path) -> None:
        # Extra stages are written at run time (not by the control-plane build, whose inputs
        # key its cache): a change here costs no rebuild.
        extra = self.workdir / "kwok-extra-stages.yaml"
        extra.write_text(yaml.safe_dump(kwok.build_pod_recover_stage()))
        self._spawn(
            "kwok",
            [
                str(bin_dir / "kwok"),
                f"--kubeconfig={self.kubeconfig_for('kwok')}",
                "--manage-all-nodes=false",
                f"--config={bin_dir / 'kwok-stages.yaml'}",
                f"--config={extra}",
                # Renewed node Leases are the heartbeat the controller-manager checks.
                f"--node-lease-duration-seconds={self.node_lease_seconds}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
                # Pod logs of the dev pod executor (kwok.py): Logs objects, not config.
                f"--enable-crds={kwok.ENABLED_CRDS}",
                "--cidr=10.244.0.1/16",
                # The fake nodes' "kubelet" is kwok's own server, on loopback: the API server
                # reaches it for pods/log (kwok.py) at InternalIP:kubeletEndpoint.Port. An
                # address off this machine could not be reached (nor should it be).
                "--node-ip=127.0.0.1",
                f"--node-port={self.state.ports['kwok']}",
                f"--server-address=127.0.0.1:{self.state.ports['kwok']}",
            ],
        )

    def _install_kwok_crds(self, deadline: float) -> None:
        """kwok watches Logs objects (--enable-crds): their CRD is there before it starts."""
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        status, payload = self.request("POST", path, kwok.build_logs_crd())
        if status not in (201, 409):
            raise ClusterError(f"creating the kwok Logs CRD: {status} {payload}")

        def established() -> bool:
            _, crd = self.request("GET", f"{path}/{kwok.LOGS_CRD}")
            conditions = (crd.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        self._wait("the kwok Logs CRD", deadline, established)

    # -- API helpers (urllib: the launcher must not need the kubernetes client) ------
    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, user: str = "admin"
    ) -> tuple[int, dict[str, Any]]:
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.state.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token(user)}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {"raw": raw.decode(errors="replace")}
        return status, payload if isinstance(payload, dict) else {"items": payload}

    def _apiserver_ready(self) -> bool:
        try:
            status, _ = self.request("GET", "/readyz")
        except (OSError, ssl.SSLError):
            return False
        return status == 200

    def _default_sa_exists(self) -> bool:
        status, _ = self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200

    def _create_nodes(self) -> None:
        for i in range(self.nodes):
            node = build_fake_node(f"kwok-{i}", self.scale.node_pods)
            status, payload = self.request("POST", "/api/v1/nodes", node)
            if status not in (201, 409):
                raise ClusterError(f"creating node kwok-{i}: {status} {payload}")

    def _nodes_ready(self) -> bool:
        _, payload = self.request("GET", "/api/v1/nodes")
        nodes = payload.get("items", [])
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= self.nodes

    def _wait(self, what: str, deadline: float, check: Any) -> None:
        while time.monotonic() < deadline:
            for name, pid in self.state.pids.items():
                if not procs.alive(pid):
                    raise ClusterError(f"{name} exited while waiting for {what}")
            if check():
                return
            time.sleep(0.1)
        raise ClusterError(f"timed out waiting for {what}")

    # -- files -----------------------------------------------------------------------
    def _write_tokens_and_kubeconfigs(self) -> None:
        lines = [
            f'{self.state.tokens[key]},{user},{user},"{groups}"'
            for key, (user, groups) in USERS.items()
        ]
        tokens = self.workdir / "tokens.csv"
        tokens.write_text("\n".join(lines) + "\n")
        tokens.chmod(0o600)
        for key in USERS:
            path = self.kubeconfig_for(key)
            path.write_text(
                yaml.safe_dump(
                    build_kubeconfig(self.state.server, self.ca_cert, key, self.state.tokens[key])
                )
            )
            path.chmod(0o600)

    def _state_path(self) -> Path:
        return self.workdir / "state.json"

    def _load_state(self) -> State:
        try:
            return State(**json.loads(self._state_path().read_text()))
        except FileNotFoundError:
            return State()

    def _save_state(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._state_path().write_text(json.dumps(asdict(self.state), indent=2))


def build_kubeconfig(server: str, ca_cert: Path, user: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mlkube-dev",
                "cluster": {"server": server, "certificate-authority": str(ca_cert)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": f"{user}@mlkube-dev", "context": {"cluster": "mlkube-dev", "user": user}}
        ],
        "current-context": f"{user}@mlkube-dev",
    }


def build_fake_node(name: str, pods: int = 110) -> dict[str, Any]:
    """A Node that kwok manages (annotation) with room for many small pods."""
    room = {"cpu": str(max(32, pods // 4)), "memory": f"{max(256, pods)}Gi", "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "status": {
            "allocatable": dict(room),
            "capacity": dict(room),
        },
    }
