"""`mlkube dev up|down|status`: the embedded default — a real local control plane, the CRDs,
the operator and the samples, ready for `kubectl` in one command."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mlkube.devcluster import Cluster, ClusterError
from mlkube.devcluster.cluster import OPERATOR_USER, REPO_ROOT
from mlkube.devcluster.procs import free_port

DEFAULT_WORKDIR = REPO_ROOT / ".dev" / "cluster"


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("dev", help="local development control plane")
    verbs = p.add_subparsers(dest="verb", required=True)
    for name, func, text in (
        ("up", up, "start control plane, CRDs, operator and samples"),
        ("down", down, "stop everything `dev up` started"),
        ("status", status, "show what is running"),
    ):
        v = verbs.add_parser(name, help=text)
        v.add_argument(
            "--workdir", type=Path, default=Path(os.environ.get("MLKUBE_DEV_DIR", DEFAULT_WORKDIR))
        )
        v.set_defaults(func=func)
    verbs.choices["up"].add_argument(
        "--nodes", type=int, default=None, help="kwok nodes (default 2, 0 with --real-node)"
    )
    verbs.choices["up"].add_argument("--no-samples", action="store_true")
    verbs.choices["up"].add_argument(
        "--real-node",
        action="store_true",
        default=os.environ.get("MLKUBE_REAL_NODE", "") not in ("", "0", "false"),
        help="also run a real node (containerd, kubelet) so pods run; docs/dev-cluster.md",
    )


def up(args: argparse.Namespace) -> int:
    from mlkube.devcluster import realnode, realnode_store

    real = args.real_node
    if real and (reason := realnode.unsupported_reason()):
        print(f"warning: {reason}; starting with kwok nodes only", file=sys.stderr)
        real = False
    nodes = args.nodes if args.nodes is not None else (0 if real else 2)
    cluster = Cluster(args.workdir, nodes=nodes)
    started = time.monotonic()
    if cluster.running():
        print(f"control plane already running ({cluster.state.server})", file=sys.stderr)
    else:
        try:
            cluster.start()
        except ClusterError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"control plane up in {time.monotonic() - started:.1f}s", file=sys.stderr)
    from mlkube.k8s import Kube
    from mlkube.k8s.crds import apply_crds

    node_env: dict[str, str] = {}
    if real:
        node = realnode.RealNode(cluster)
        if not node.running():
            node_started = time.monotonic()
            try:
                node.start()
            except ClusterError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
            print(f"real node up in {time.monotonic() - node_started:.1f}s", file=sys.stderr)
        node_env = realnode.operator_env(node)
        # Sample uploads from this process go to the node's store, which pods can reach.
        os.environ.update(node.store_env())
    kube = Kube(str(cluster.kubeconfig))
    apply_crds(kube, REPO_ROOT / "crds", field_manager="mlkube-dev")
    if "operator" not in cluster.state.pids:
        start_operator(cluster, kube, node_env)
    if not args.no_samples:
        from mlkube.cli.samples import install_samples

        store = f"s3://{realnode_store.BUCKET}" if real else None
        install_samples(kube, cluster.workdir, store_uri=store)
    kc = cluster.kubeconfig
    # One line (a backslash in this f-string would only join it, leaving a run of spaces).
    sample = "examples/models/credit-risk/3/sample-request.json"
    print(f"""
mlkube dev cluster is ready ({time.monotonic() - started:.1f}s)
  kubeconfig: {kc}
  operator log: {cluster.logs / "operator.log"}

Try:
  export KUBECONFIG={kc}
  kubectl version
  kubectl get models,onlineendpoints -A
  mlkube model list --tag team=risk
  mlkube endpoint show credit
  mlkube endpoint run-local credit --port 8081   # router + model servers as local processes
  mlkube endpoint invoke credit --url http://127.0.0.1:8081 --request-file {sample}

Stop it with: make dev-down""")
    return 0


def start_operator(cluster: Cluster, kube: Any, extra_env: dict[str, str] | None = None) -> None:
    """The operator as the chart runs it: its own identity under the chart's ClusterRole, with
    the admission webhooks served over TLS (the cluster CA signed its 127.0.0.1 certificate).
    The admin registers the webhook configurations (a loopback URL: this cluster only), as the
    chart does with a Service reference; the operator never registers any."""
    import base64

    from mlkube.builders.rbac import build_cluster_role_binding, build_operator_cluster_role
    from mlkube.builders.webhook_config import build_webhook_configurations, url_client

    kube.apply(build_operator_cluster_role(), field_manager="mlkube-dev")
    kube.apply(
        build_cluster_role_binding("mlkube-operator", "mlkube-operator", user=OPERATOR_USER),
        field_manager="mlkube-dev",
    )
    # The operator's namespace holds its audit key Secret.
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mlkube-system"}},
               field_manager="mlkube-dev")  # fmt: skip
    pki = cluster.workdir / "pki"
    port = free_port()
    env = {
        "MLKUBE_WEBHOOK_PORT": str(port),
        "MLKUBE_WEBHOOK_ADDR": "127.0.0.1",
        "MLKUBE_WEBHOOK_CERT": str(pki / "apiserver.crt"),
        "MLKUBE_WEBHOOK_KEY": str(pki / "apiserver.key"),
        "MLKUBE_NAMESPACE": "mlkube-system",
        "MLKUBE_OPERATOR_USERNAME": OPERATOR_USER,
        # The dev store is file:// on this machine, where the operator runs too.
        "MLKUBE_ALLOW_FILE_ARTIFACTS": "true",
        # kwok pod IPs exist nowhere: never poll them (traffic would leave this machine).
        "MLKUBE_POD_NETWORKS": "127.0.0.0/8",
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "mlkube", "operator",
            "--kubeconfig", str(cluster.kubeconfig_for("operator")),
            "--liveness", f"http://127.0.0.1:{free_port()}/healthz", "--standalone"]  # fmt: skip
    cluster.add_process("operator", argv, env)
    ca_bundle = base64.b64encode((pki / "ca.crt").read_bytes()).decode()
    for obj in build_webhook_configurations(
        url_client(f"https://127.0.0.1:{port}"), ca_bundle=ca_bundle
    ):
        kube.apply(obj, field_manager="mlkube-dev")


def down(args: argparse.Namespace) -> int:
    from mlkube.devcluster.realnode import RealNode

    cluster = Cluster(args.workdir)
    node = RealNode(cluster)
    if node.state.pids:
        for problem in node.stop():
            print(f"warning: {problem}", file=sys.stderr)
    cluster.stop()
    print("stopped", file=sys.stderr)
    return 0


def status(args: argparse.Namespace) -> int:
    from mlkube.devcluster.realnode import RealNode

    cluster = Cluster(args.workdir)
    info = cluster.status()
    if (cluster.workdir / "node" / "state.json").exists():
        info["realNode"] = RealNode(cluster).status()
    print(json.dumps(info, indent=2))
    return 0
