"""`mlkube dev up|down|status`: the embedded default — a real local control plane, the CRDs,
the operator and the samples, ready for `kubectl` in one command."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from mlkube.devcluster import Cluster, ClusterError, devstore, kubectl
from mlkube.devcluster.cluster import OPERATOR_USER, REPO_ROOT
from mlkube.devcluster.procs import free_port
from mlkube.storage.default_store import DefaultStore

DEFAULT_WORKDIR = REPO_ROOT / ".dev" / "cluster"
# Operator settings of batch endpoints (contract C3 of issue 11), set by the dev cluster.
ENV_BATCH_OUTPUT_STORE = "MLKUBE_BATCH_OUTPUT_STORE"
ENV_BATCH_POD_ANNOTATIONS = "MLKUBE_BATCH_POD_ANNOTATIONS"
ENV_ARTIFACT_STORE = "MLKUBE_ARTIFACT_STORE"  # pipeline step outputs and cache (issue 12)
ENV_IMAGE_DIGESTS = "MLKUBE_IMAGE_DIGESTS"  # pipeline cache keys need image digests (issue 12)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("dev", help="local development control plane")
    verbs = p.add_subparsers(dest="verb", required=True)
    for name, func, text in (
        ("up", up, "start control plane, CRDs, operator and samples"),
        ("down", down, "stop everything `dev up` started"),
        ("status", status, "show what is running"),
        ("env", env, "print the shell lines that point KUBECONFIG and PATH at the dev cluster"),
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
    from mlkube.devcluster import realnode

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
    kube = Kube(str(cluster.kubeconfig))
    apply_crds(kube, REPO_ROOT / "crds", field_manager="mlkube-dev")
    try:
        store = realnode_store_default(node_env) if real else start_store(cluster, kube)
        kubectl.link_kubectl(cluster.workdir)
    except (ClusterError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    # One place: the kubeconfig's context names the store for the CLI; this process (sample
    # uploads) and the operator get the same settings.
    devstore.write_default_store(cluster.kubeconfig, store)
    os.environ.update(store.client_env())
    batch_env = start_batch_support(cluster, store.uri, kwok=not real)
    if not real:
        batch_env[ENV_IMAGE_DIGESTS] = kwok_image_digests()
        try:
            batch_env.update(start_build_support(cluster))
        except (ClusterError, RuntimeError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    if "operator" not in cluster.state.pids:
        start_operator(cluster, kube, {**devstore.operator_env(store), **node_env, **batch_env})
    if not args.no_samples:
        from mlkube.cli.samples import install_samples

        install_samples(
            kube, cluster.workdir, store_uri=store.uri,
            step_image=node_env.get("MLKUBE_SERVING_IMAGE"),
        )  # fmt: skip
    print(ready_message(cluster, store.uri, time.monotonic() - started, args.workdir))
    return 0


def start_batch_support(cluster: Cluster, store_uri: str, kwok: bool) -> dict[str, str]:
    """The operator's batch settings (contract C3): outputs under the dev store; in the kwok
    mode, batch pods carry the annotations that hand them to the dev pod executor (kwok fakes
    pods, the executor runs them as local processes: docs/dev-cluster.md), started here."""
    from mlkube.devcluster import podexec

    env = {
        ENV_BATCH_OUTPUT_STORE: f"{store_uri.rstrip('/')}/batch",
        ENV_ARTIFACT_STORE: f"{store_uri.rstrip('/')}/pipelines",
    }
    if kwok:
        env[ENV_BATCH_POD_ANNOTATIONS] = podexec.POD_ANNOTATIONS_SETTING
        if podexec.PROCESS not in cluster.state.pids:
            argv = podexec.executor_argv(cluster.kubeconfig, cluster.workdir / podexec.PROCESS)
            cluster.add_process(podexec.PROCESS, argv)
    return env


def start_build_support(cluster: Cluster) -> dict[str, str]:
    """kwok mode: the registry and package mirror on loopback (build pods run as local
    processes there); returns the operator's build settings. The real node starts its own on
    the bridge (realnode.operator_env)."""
    from mlkube.devcluster import buildsupport

    ports = cluster.state.ports
    for name in (buildsupport.REGISTRY_PROCESS, buildsupport.MIRROR_PROCESS):
        ports.setdefault(name, free_port())
    addrs = buildsupport.Addresses(
        "127.0.0.1", ports[buildsupport.REGISTRY_PROCESS], ports[buildsupport.MIRROR_PROCESS]
    )
    from mlkube.devcluster import image_digests, kwok_curated

    if buildsupport.REGISTRY_PROCESS not in cluster.state.pids:
        started = time.monotonic()
        buildsupport.start(cluster.add_process, REPO_ROOT / "hack", cluster.workdir, addrs)
        print(f"registry + package mirror up in {time.monotonic() - started:.1f}s", file=sys.stderr)
    # Curated bases must resolve to digests; the executor runs this checkout, not images.
    pushed = kwok_curated.push_stand_ins(addrs.registry, image_digests.source_digest(REPO_ROOT))
    return buildsupport.operator_env(addrs, pushed)


def kwok_image_digests() -> str:
    """MLKUBE_IMAGE_DIGESTS in the kwok mode: the default serving image is "run" by the dev pod
    executor from this checkout, so its digest is the digest of those sources."""
    from mlkube.builders.operator_config import DEFAULT_SERVING_IMAGE
    from mlkube.devcluster import image_digests

    return image_digests.setting({DEFAULT_SERVING_IMAGE: image_digests.source_digest(REPO_ROOT)})


def start_store(cluster: Cluster, kube: Any) -> DefaultStore:
    """The kwok mode's default store (loopback MinIO) and its credentials Secret for pods."""
    store_started = time.monotonic()
    store = devstore.ensure_store(cluster)
    kube.apply(devstore.storage_secret("default", store), field_manager="mlkube-dev")
    print(f"artifact store up in {time.monotonic() - store_started:.1f}s", file=sys.stderr)
    return store


def realnode_store_default(node_env: dict[str, str]) -> DefaultStore:
    """The real node's store (on the bridge, where pods reach it) as the default store."""
    from mlkube.contract import ENV_S3_ENDPOINT_URL
    from mlkube.devcluster import realnode_store

    return DefaultStore(
        uri=f"s3://{realnode_store.BUCKET}", endpoint_url=node_env.get(ENV_S3_ENDPOINT_URL),
        access_key_id=node_env.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=node_env.get("AWS_SECRET_ACCESS_KEY"),
        region=node_env.get("AWS_DEFAULT_REGION"),
    )  # fmt: skip


def env_command(workdir: Path) -> str:
    """The `eval` line that sets up a fresh shell (--workdir unless it is the default: the
    shell need not have this process's MLKUBE_DEV_DIR)."""
    mlkube = Path(sysconfig.get_path("scripts")) / "mlkube"
    flag = (
        ""
        if workdir.resolve() == DEFAULT_WORKDIR.resolve()
        else f" --workdir {shlex.quote(str(workdir))}"
    )
    return f'eval "$({shlex.quote(str(mlkube))} dev env{flag})"'


def ready_message(cluster: Cluster, store: str, seconds: float, workdir: Path) -> str:
    """What `make dev` prints; every command in it runs in tests/integration/test_dev_tour.py."""
    sample = "examples/models/credit-risk/3/sample-request.json"
    return f"""
mlkube dev cluster is ready ({seconds:.1f}s)
  kubeconfig: {cluster.kubeconfig}
  default artifact store: {store} (`mlkube model register` copies models there)
  operator log: {cluster.logs / "operator.log"}
  sample batch input: {store}/samples/credit-applications/ (and .../credit-applications-poisoned/)

Try (from {REPO_ROOT}):
  {env_command(workdir)}   # KUBECONFIG; PATH: mlkube, kubectl 1.36
  kubectl version
  kubectl get models,onlineendpoints -A
  mlkube model list --tag team=risk
  mlkube endpoint show credit
  mlkube endpoint run-local credit --port 8081 &   # router + model servers as local processes
  mlkube endpoint invoke credit --url http://127.0.0.1:8081 --wait 120 --request-file {sample}
  kill %1
  mlkube batch invoke credit-batch --input {store}/samples/credit-applications/ --wait 300

Stop it with: make dev-down"""


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
        # Dev mode: `--in-place` Models (file://) and the loopback store are on this machine,
        # where the operator runs too.
        "MLKUBE_ALLOW_FILE_ARTIFACTS": "true",
        # kwok pod IPs exist nowhere: never poll them (traffic would leave this machine).
        "MLKUBE_POD_NETWORKS": "127.0.0.0/8",
        # The notifications outbox lives and goes with the dev cluster (docs/notifications.md).
        "MLKUBE_OUTBOX_PATH": str(cluster.workdir / "outbox.db"),
        # glibc gives each thread that allocates its own malloc arena (up to 8 x cores): the
        # Kopf/verify worker threads' freed memory stays split across them as RSS. Two arenas
        # is the usual fix for threaded CPython (docs/benchmarks/operator-scale.md, "Memory").
        "MALLOC_ARENA_MAX": "2",
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


def env(args: argparse.Namespace) -> int:
    """Shell lines for `eval`: the dev kubeconfig, and PATH with mlkube and kubectl first."""
    cluster = Cluster(args.workdir)
    if not cluster.kubeconfig.exists():
        print(f"error: no dev cluster in {cluster.workdir}: run `make dev` first", file=sys.stderr)
        return 1
    dirs = ":".join(shlex.quote(d) for d in kubectl.path_dirs(cluster.workdir))
    print(f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig))}")
    print(f'export PATH={dirs}:"$PATH"')
    return 0


def status(args: argparse.Namespace) -> int:
    from mlkube.devcluster.realnode import RealNode

    cluster = Cluster(args.workdir)
    info = cluster.status()
    if (cluster.workdir / "node" / "state.json").exists():
        info["realNode"] = RealNode(cluster).status()
    print(json.dumps(info, indent=2))
    return 0
