"""`make bench-pipeline`'s pure parts: the DAGs both systems run, the manifests each is given
(mlkube's through its own API models, so a renamed field fails here, not mid-benchmark), the
pod status the stand-in kubelet writes (accepted by the operator's own summary reader), the
statistics and the ratios printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "pipeline"
sys.path.insert(0, str(BENCH))

import argo  # noqa: E402  (bench/pipeline's modules import each other as siblings)
import harness  # noqa: E402
import kubelet  # noqa: E402
import mlkube_side  # noqa: E402
import run  # noqa: E402
import shapes  # noqa: E402

from mlkube.api.pipeline import PipelineSpec  # noqa: E402
from mlkube.api.pipeline_run import PipelineRunSpec  # noqa: E402
from mlkube.controllers.pipeline_observe import parse_summary  # noqa: E402


def test_chain_links_each_step_to_the_one_before() -> None:
    dag = shapes.chain(4)
    assert dag == {"s00": [], "s01": ["s00"], "s02": ["s01"], "s03": ["s02"]}


def test_lattice_is_fifty_steps_with_fan_in_two_from_the_layer_before() -> None:
    dag = shapes.lattice(10, 5)
    assert len(dag) == 50
    seen: set[str] = set()
    for name, deps in dag.items():  # insertion order is a topological order
        assert set(deps) <= seen, name
        seen.add(name)
        layer = int(name[1:3])
        assert len(deps) == (0 if layer == 0 else 2)
        assert all(int(d[1:3]) == layer - 1 for d in deps)
    # Every step of the last layer reaches every root (fan-out and fan-in): 10 levels deep.
    assert sum(1 for deps in dag.values() if not deps) == 5


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert shapes.percentile(values, 50) == 50.0
    assert shapes.percentile(values, 99) == 99.0
    assert shapes.percentile([3.0, 1.0, 2.0], 99) == 3.0
    assert shapes.percentile([], 50) != shapes.percentile([], 50)  # NaN


def test_mlkube_manifests_are_valid_pipeline_and_run_specs() -> None:
    side = mlkube_side.MlkubeSide("ns", parallelism=8)
    dag = shapes.lattice(3, 2)
    (pipeline,) = side.prepare("p1", dag, cached=True)
    spec = PipelineSpec.model_validate(pipeline["spec"])
    assert [s.name for s in spec.steps] == list(dag)
    assert spec.parallelism == 8
    by_name = {s["name"]: s for s in pipeline["spec"]["steps"]}
    assert all(by_name[n].get("dependsOn", []) == d for n, d in dag.items())
    # Distinct args per step: content-addressed keys would otherwise make them one entry.
    assert len({json.dumps(s["args"]) for s in by_name.values()}) == len(dag)
    assert "@sha256:" in by_name["l00w0"]["image"]  # cacheable: pinned by digest
    run_obj = side.manifest("p1", dag, cached=True)
    assert PipelineRunSpec.model_validate(run_obj["spec"]).pipeline == "p1"
    (uncached,) = side.prepare("p2", dag, cached=False)
    assert all(s["cache"] == {"enabled": False} for s in uncached["spec"]["steps"])


def test_argo_workflow_runs_the_same_dag_memoized_per_step() -> None:
    dag = shapes.lattice(2, 3)
    wf = argo.workflow("w", "ns", dag, memoize=True, parallelism=8)
    main, step = wf["spec"]["templates"]
    tasks = {t["name"]: t.get("dependencies", []) for t in main["dag"]["tasks"]}
    assert tasks == dag
    assert step["memoize"]["key"] == "bench-{{inputs.parameters.step}}"
    assert step["container"]["image"] == mlkube_side.IMAGE
    assert wf["spec"]["podMetadata"]["annotations"] == kubelet.CUSTOM
    plain = argo.workflow("w", "ns", dag, memoize=False, parallelism=8)
    assert "memoize" not in plain["spec"]["templates"][1]


def test_argo_side_names_and_requeue_env() -> None:
    assert argo.ArgoSide("ns", 8).env() == {}
    tuned = argo.ArgoSide("ns", 8, "1s")
    assert tuned.name == "argo-1s" and tuned.env() == {"DEFAULT_REQUEUE_TIME": "1s"}
    assert argo.version().startswith("v4.")
    obj = {"status": {"nodes": {"a": {"memoizationStatus": {"hit": True}}, "b": {}}}}
    assert argo.ArgoSide.cache_hits(obj) == 1
    assert argo.ArgoSide.step_name("wf-1.l00w2") == "l00w2"


def step_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "initContainers": [{"name": "inputs", "image": "i"}],
            "containers": [{"name": "main", "image": "m"}, {"name": "outputs", "image": "o"}],
        },
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
    }


def test_succeeded_status_is_a_kubelets_with_the_summary_the_operator_reads() -> None:
    patch = kubelet.succeeded_status(step_pod(), {"outputs": json.dumps(kubelet.SUMMARY)})
    status = patch["status"]
    assert status["phase"] == "Succeeded"
    states = [s["state"]["terminated"] for s in
              status["containerStatuses"] + status["initContainerStatuses"]]  # fmt: skip
    assert len(states) == 3 and all(t["exitCode"] == 0 for t in states)
    outputs = next(s for s in status["containerStatuses"] if s["name"] == "outputs")
    pod = {**step_pod(), "status": status}
    message = outputs["state"]["terminated"]["message"]
    assert parse_summary(message, complete=True) is not None, pod
    assert {"type": "PodScheduled", "status": "True"} in status["conditions"]


def figures(gap: float, cached: float) -> harness.Figures:
    return harness.Figures(gaps_ms=[gap], own_gaps_ms=[gap], first_ms=[1.0], chain_s=[1.0],
                       dag_cold_s=[2.0], dag_cached_s=[cached])  # fmt: skip


class FakeSide:
    def __init__(self, name: str) -> None:
        self.name = name
        self.label = name.upper()


@pytest.mark.parametrize("order", [("argo", "mlkube"), ("mlkube", "argo")])
def test_table_gives_mlkube_over_each_peer(order: tuple[str, str]) -> None:
    numbers = {"argo": figures(1000.0, 4.0), "mlkube": figures(250.0, 1.0)}
    harnesses = [harness.Harness(None, FakeSide(n), None, None, None, numbers[n]) for n in order]  # type: ignore[arg-type]
    text = run.table(harnesses, 50)
    assert "mlkube / ARGO" in text
    overhead = next(line for line in text.splitlines() if "per-step overhead p50" in line)
    assert overhead.rstrip(" |").endswith("0.25x")
    assert "| 50-step DAG fully cached, median (s) |" in text
