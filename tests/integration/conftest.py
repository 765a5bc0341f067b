"""Integration fixtures: one real control plane per session, a fresh namespace per test and the
operator in-process (KopfRunner in a thread), with the CRDs applied from crds/ so the real API
server validates the generated schemas."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from mlkube.builders.rbac import build_chart_roles, build_cluster_role_binding
from mlkube.devcluster import Cluster
from mlkube.devcluster.cluster import OPERATOR_USER, ScaleOptions, build_binaries
from mlkube.handlers.config import operator_config
from mlkube.k8s import ApiError, Kube
from mlkube.k8s.crds import apply_crds
from support.operator import OPERATOR_KUBECONFIG_ENV, run_operator
from support.podexec import PodExecutor, run_pod_executor

REPO = Path(__file__).resolve().parents[2]
# The controller-manager's node-monitor grace period for the session cluster (default 50 s):
# short, so stale node heartbeats show up within any test that runs past it, not after an hour.
NODE_GRACE_SECONDS = 20.0


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    bin_dir = os.environ.get("MLKUBE_CONTROLPLANE_BIN")
    c = Cluster(
        tmp_path_factory.mktemp("cluster"),
        Path(bin_dir) if bin_dir else build_binaries(),
        node_monitor_grace_period=NODE_GRACE_SECONDS,
        # The operator identity's requests go to an audit log: idle tests count its writes.
        scale=ScaleOptions(audit_users=(OPERATOR_USER,)),
    )
    started = time.monotonic()
    c.start()
    print(f"\ncontrol plane started in {time.monotonic() - started:.1f}s")
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(c.kubeconfig)
    yield c
    c.stop()
    if old is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = old


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> Kube:
    return Kube(str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def crds(kube: Kube, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """CRDs from crds/, and the operator identity bound to the chart's generated roles as the
    chart binds them with `watchNamespaces`: cluster-scoped reads cluster-wide, the namespaced
    rights only in each test's namespace (`namespace` fixture). Every in-process operator runs
    with exactly the rights the Helm chart grants."""
    names = apply_crds(kube, REPO / "crds", field_manager="mlkube-tests")
    for role in build_chart_roles():
        kube.apply(role)
    kube.apply(
        build_cluster_role_binding(
            "mlkube-operator-cluster", "mlkube-operator-cluster", user=OPERATOR_USER
        )
    )
    os.environ[OPERATOR_KUBECONFIG_ENV] = str(cluster.kubeconfig_for("operator"))
    # Tests keep artifacts in tmp dirs (file://), like a local dev cluster does.
    os.environ["MLKUBE_ALLOW_FILE_ARTIFACTS"] = "true"
    # kwok pods get addresses that exist nowhere: the operator contacts loopback "pods" only
    # (the drift tests report 127.0.0.1 as a pod's IP), never kwok's pod CIDR off this machine.
    os.environ["MLKUBE_POD_NETWORKS"] = "127.0.0.0/8"
    # In-process operators keep their notifications outbox in the session's tmp dir, never in
    # the user's state directory (the default outside a pod).
    os.environ["MLKUBE_OUTBOX_PATH"] = str(tmp_path_factory.mktemp("outbox") / "outbox.db")
    # The operator reads its config once per process: one read before this environment (a unit
    # test run earlier in the same session) would refuse the tests' file:// artifacts.
    operator_config.cache_clear()
    return names


@pytest.fixture
def namespace(kube: Kube, crds: list[str]) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    binding = build_cluster_role_binding("mlkube-operator", "mlkube-operator", user=OPERATOR_USER)
    kube.create({**binding, "kind": "RoleBinding",
                 "metadata": {"name": "mlkube-operator", "namespace": name}})  # fmt: skip
    yield name
    with contextlib.suppress(ApiError):
        kube.delete("v1", "Namespace", name)


@pytest.fixture(scope="session")
def pod_executor(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodExecutor]:
    """The dev pod executor (contract C2) for the session cluster: pods whose template carries
    `support.podexec.POD_ANNOTATIONS` run as local processes (python commands only); other pods
    stay kwok's. Its log: `pod_executor.output()`; a container's: `container_log(ns, pod, c)`."""
    with run_pod_executor(cluster.kubeconfig, tmp_path_factory.mktemp("podexec")) as executor:
        yield executor
    assert executor.process.returncode == 0, executor.output()


@pytest.fixture
def running_operator(namespace: str) -> Iterator[KopfRunner]:
    with run_operator(namespace) as runner:
        yield runner
