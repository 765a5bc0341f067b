"""mlkube's PipelineRun controller as the benchmark measures it: the real operator as a
process (as `make dev` starts it), with the same DAGs as Argo's workflows (argo.py).

Step pods get `kwok.x-k8s.io/status: custom` through MLKUBE_BATCH_POD_ANNOTATIONS (the setting
the dev cluster uses to hand pods to its executor), so kubelet.StepCompleter completes them as it
does Argo's. The step image is pinned by digest, so steps are cacheable (docs/pipelines.md §3);
cache entries go to a file:// artifact store in the benchmark's temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The same step image as Argo's, pinned by digest: mlkube caches only digest-pinned images.
from argo import IMAGE

from mlkube.cli.dev import start_operator
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from mlkube.k8s.crds import apply_crds

REPO = Path(__file__).resolve().parents[2]
STEP_COMMAND = ["python", "-c", "pass"]


class MlkubeSide:
    name = "mlkube"
    label = "mlkube"
    api_version, kind = API_VERSION, "PipelineRun"
    terminal = ("Succeeded", "Failed", "Cancelled")

    def __init__(self, namespace: str, parallelism: int) -> None:
        self.namespace = namespace
        self.parallelism = parallelism

    def pipeline(self, name: str, dag: dict[str, list[str]], cached: bool) -> dict[str, Any]:
        steps = []
        for step, deps in dag.items():
            # The step's name in its args: identical steps would be one cache entry (the key is
            # content, not name), as Argo's memoize key names the step.
            body: dict[str, Any] = {
                "name": step,
                "image": IMAGE,
                "command": STEP_COMMAND,
                "args": [step],
                "cache": {"enabled": cached},
            }
            if deps:
                body["dependsOn"] = deps
            steps.append(body)
        return {
            "apiVersion": API_VERSION,
            "kind": "Pipeline",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"parallelism": self.parallelism, "steps": steps},
        }

    def prepare(self, name: str, dag: dict[str, list[str]], cached: bool) -> list[dict[str, Any]]:
        """One Pipeline per run (the DAG's template), created before the clock starts; the
        cached reruns all share the cold run's Pipeline spec, so their steps have its keys."""
        return [self.pipeline(name, dag, cached)]

    def manifest(self, name: str, dag: dict[str, list[str]], cached: bool) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"pipeline": name},
        }

    @staticmethod
    def phase(obj: dict[str, Any]) -> str | None:
        value = (obj.get("status") or {}).get("phase")
        return str(value) if value else None

    @staticmethod
    def step_name(step: str) -> str:
        return step  # the pod's mlkube.dev/pipeline-step label

    @staticmethod
    def cache_hits(obj: dict[str, Any]) -> int:
        steps = (obj.get("status") or {}).get("steps") or []
        return sum(1 for s in steps if (s.get("cache") or {}).get("hit"))


def start(cluster: Cluster, kube: Kube, namespace: str, parallelism: int, tmp: Path) -> MlkubeSide:
    """CRDs, then the operator as a process with the benchmark's settings."""
    apply_crds(kube, REPO / "crds", field_manager="mlkube-bench")
    store = tmp / "store"
    store.mkdir(parents=True, exist_ok=True)
    start_operator(
        cluster,
        kube,
        {
            "MLKUBE_BATCH_POD_ANNOTATIONS": "kwok.x-k8s.io/status=custom",
            "MLKUBE_ARTIFACT_STORE": store.as_uri(),
            "MLKUBE_BATCH_OUTPUT_STORE": store.as_uri(),
        },
    )
    return MlkubeSide(namespace, parallelism)
