"""Argo Workflows' workflow-controller as the benchmark's peer: built from its Go module
(hack/argo/build.sh), run as a process against the same control plane, and the workflows that
match mlkube's benchmark pipelines step for step.

The controller runs namespaced (`--namespaced --managed-namespace`), with the admin
kubeconfig (as a process it needs no ServiceAccount or RBAC of its own), metrics and telemetry
off, /healthz on a loopback port (hack/argo/main.go): nothing listens off loopback. Its config
is upstream's defaults otherwise. Step pods carry `kwok.x-k8s.io/status: custom` through the
Workflow's `podMetadata` and are completed by kubelet.StepCompleter, as mlkube's are.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from mlkube.devcluster import Cluster
from mlkube.k8s import Kube

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "argo" / "build.sh"
API = "argoproj.io/v1alpha1"
CONFIGMAP = "argo-bench-controller"
IMAGE = "registry.invalid/mlkube-bench/step@sha256:" + "5" * 64  # never pulled (kwok)
EXECUTOR_IMAGE = "quay.io/argoproj/argoexec:v4.0.5"  # idem (the wait/init containers)
MEMO_CONFIGMAP = "argo-bench-memo"


def build() -> tuple[Path, float]:
    """The controller binary and the seconds it took to get: $MLKUBE_ARGO_BIN (what hack/test
    exports) or hack/argo/build.sh (a cached build, else built now)."""
    started = time.monotonic()
    given = os.environ.get("MLKUBE_ARGO_BIN")
    if given:
        return Path(given), 0.0
    out = subprocess.run(["bash", str(BUILD)], stdout=subprocess.PIPE, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1]), time.monotonic() - started


def install_crds(kube: Kube, crds: Path) -> None:
    """Argo's CRDs (the module's manifests/base/crds/minimal, copied by the build)."""
    names = []
    for path in sorted(crds.glob("argoproj.io_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        kube.apply(crd, field_manager="mlkube-bench")
        names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
            conds = (crd.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established")
            time.sleep(0.1)


def controller_config() -> dict[str, Any]:
    """The controller's ConfigMap: upstream defaults, with its listeners off (loopback only)."""
    return {
        "metricsConfig": "enabled: false\n",
        "telemetryConfig": "enabled: false\n",
    }


def start(
    cluster: Cluster, kube: Kube, binary: Path, namespace: str, env: dict[str, str] | None = None
) -> int:
    """Install CRDs and config, start the controller; returns its pid (the cluster stops it)."""
    install_crds(kube, binary.parent / "crds")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": namespace},
            "data": controller_config(),
        },
        field_manager="mlkube-bench",
    )
    argv = [
        str(binary),
        f"--kubeconfig={cluster.kubeconfig}",
        f"--namespace={namespace}",
        "--namespaced",
        f"--managed-namespace={namespace}",
        f"--configmap={CONFIGMAP}",
        f"--executor-image={EXECUTOR_IMAGE}",
        "--loglevel=warn",
        "--healthz-addr=127.0.0.1:0",
    ]
    return cluster.add_process(f"argo-workflow-controller-{namespace}", argv, env)


def _task(name: str, deps: list[str]) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": name,
        "template": "step",
        "arguments": {"parameters": [{"name": "step", "value": name}]},
    }
    if deps:
        task["dependencies"] = deps
    return task


def workflow(
    name: str, namespace: str, dag: dict[str, list[str]], memoize: bool, parallelism: int
) -> dict[str, Any]:
    """A Workflow running `dag` (step → dependencies) as one DAG template of container steps;
    with `memoize`, each step memoized under a key naming the step (a ConfigMap cache)."""
    step: dict[str, Any] = {
        "name": "step",
        "inputs": {"parameters": [{"name": "step"}]},
        "container": {
            "image": IMAGE,
            "command": ["python", "-c", "pass"],
            "args": ["{{inputs.parameters.step}}"],
        },  # as mlkube_side's steps
    }
    if memoize:
        step["memoize"] = {
            "key": "bench-{{inputs.parameters.step}}",
            "maxAge": "24h",
            "cache": {"configMap": {"name": MEMO_CONFIGMAP}},
        }
    return {
        "apiVersion": API,
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "entrypoint": "main",
            "parallelism": parallelism,
            "podMetadata": {"annotations": {"kwok.x-k8s.io/status": "custom"}},
            "templates": [
                {"name": "main", "dag": {"tasks": [_task(n, d) for n, d in dag.items()]}},
                step,
            ],
        },
    }


def phase(obj: dict[str, Any]) -> str | None:
    value = (obj.get("status") or {}).get("phase")
    return str(value) if value else None


def version() -> str:
    """The pinned Argo Workflows version (hack/argo/go.mod)."""
    for line in (BUILD.parent / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["github.com/argoproj/argo-workflows/v4"]:
            return parts[1]
    return "?"


class ArgoSide:
    """What run.py needs of a controller: its run objects, their phases, their steps."""

    api_version, kind = API, "Workflow"
    terminal = ("Succeeded", "Failed", "Error")

    def __init__(self, namespace: str, parallelism: int, requeue: str = "") -> None:
        self.namespace = namespace
        self.parallelism = parallelism
        self.requeue = requeue
        self.name = f"argo-{requeue}" if requeue else "argo"
        self.label = f"Argo {version()}" + (f" (requeue {requeue})" if requeue else " (defaults)")

    def env(self) -> dict[str, str]:
        """Argo enqueues a workflow DEFAULT_REQUEUE_TIME after any event about it (10 s by
        default, rate_limiters.go: "some users may wish to have this as low as 2s"; at least 1s,
        or informers lag): the tuned variant runs with a shorter one."""
        return {"DEFAULT_REQUEUE_TIME": self.requeue} if self.requeue else {}

    def prepare(self, name: str, dag: dict[str, list[str]], cached: bool) -> list[dict[str, Any]]:
        return []  # a Workflow carries its templates

    def manifest(self, name: str, dag: dict[str, list[str]], cached: bool) -> dict[str, Any]:
        return workflow(name, self.namespace, dag, cached, self.parallelism)

    @staticmethod
    def phase(obj: dict[str, Any]) -> str | None:
        return phase(obj)

    @staticmethod
    def step_name(node_name: str) -> str:
        return node_name.rsplit(".", 1)[-1]  # "<workflow>.<task>"

    @staticmethod
    def cache_hits(obj: dict[str, Any]) -> int:
        nodes = ((obj.get("status") or {}).get("nodes") or {}).values()
        return sum(1 for n in nodes if (n.get("memoizationStatus") or {}).get("hit"))
