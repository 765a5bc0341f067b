"""The measuring half of `make bench-pipeline` (run.py): a run of a DAG on one system, timed by
watch events, and the figures taken from it (see run.py for what each one means)."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import shapes
from kubelet import StepCompleter
from kwatch import Recorder

from mlkube.k8s import Kube

TIMEOUT = 900.0


class Side(Protocol):
    name: str
    label: str
    namespace: str
    api_version: str
    kind: str
    terminal: tuple[str, ...]

    def prepare(self, name: str, dag: shapes.Dag, cached: bool) -> list[dict[str, Any]]: ...
    def manifest(self, name: str, dag: shapes.Dag, cached: bool) -> dict[str, Any]: ...
    def phase(self, obj: dict[str, Any]) -> str | None: ...
    def step_name(self, step: str) -> str: ...
    def cache_hits(self, obj: dict[str, Any]) -> int: ...


@dataclass
class Figures:
    gaps_ms: list[float] = field(default_factory=list)
    # The controller's own part: mlkube from its Job k Complete to its Job k+1 created (the Job
    # controller's hops excluded); Argo has no intermediary, so it is its whole gap.
    own_gaps_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)  # created → pod of step 1 created
    chain_s: list[float] = field(default_factory=list)
    dag_cold_s: list[float] = field(default_factory=list)
    dag_cached_s: list[float] = field(default_factory=list)


@dataclass
class Harness:
    kube: Kube
    side: Side
    recorder: Recorder
    completer: StepCompleter
    jobs: Recorder | None = None  # the side's step Jobs, when it has any
    figures: Figures = field(default_factory=Figures)

    def run(self, name: str, dag: shapes.Dag, cached: bool) -> tuple[float, float]:
        """Create a run of `dag` and wait for it to end Succeeded: (created, succeeded)."""
        for obj in self.side.prepare(name, dag, cached):  # before the clock starts
            self.kube.create(obj)
        manifest = self.side.manifest(name, dag, cached)
        started = time.monotonic()
        self.kube.create(manifest)
        phase, ended = self.recorder.wait(name, self.side.terminal, TIMEOUT)
        self.completer.check()
        if phase != "Succeeded":
            status = (self.recorder.objects.get(name) or {}).get("status")
            raise RuntimeError(f"{self.side.name} {name} ended {phase}: {json.dumps(status)[:800]}")
        return started, ended

    def chain(self, name: str, n: int) -> None:
        started, ended = self.run(name, shapes.chain(n), cached=False)
        pods = {self.side.step_name(p.step): p for p in self.completer.by_run(name)}
        order = list(shapes.chain(n))
        missing = [s for s in order if s not in pods or not pods[s].done]
        if missing:
            raise RuntimeError(f"{self.side.name} {name}: no completed pod for {missing}")
        f = self.figures
        pairs = list(itertools.pairwise(order))
        f.gaps_ms += [(pods[b].seen - pods[a].done) * 1000 for a, b in pairs]
        if self.jobs is None:
            f.own_gaps_ms += [(pods[b].seen - pods[a].done) * 1000 for a, b in pairs]
        else:
            jobs = job_times(self.jobs, name)
            f.own_gaps_ms += [(jobs[b]["Created"] - jobs[a]["Complete"]) * 1000 for a, b in pairs]
        f.first_ms.append((pods[order[0]].seen - started) * 1000)
        f.chain_s.append(ended - started)

    def dag(self, name: str, dag: shapes.Dag, cached_rerun: bool) -> None:
        started, ended = self.run(name, dag, cached=True)
        pods = self.completer.by_run(name)
        obj = self.recorder.objects[name]
        if cached_rerun:
            hits = self.side.cache_hits(obj)
            if pods or hits != len(dag):
                raise RuntimeError(
                    f"{self.side.name} {name}: {hits}/{len(dag)} cache hits, "
                    f"{len(pods)} pods: not fully cached"
                )
            self.figures.dag_cached_s.append(ended - started)
        else:
            if len(pods) != len(dag):
                raise RuntimeError(f"{self.side.name} {name}: {len(pods)} pods for {len(dag)}")
            self.figures.dag_cold_s.append(ended - started)


def job_state(job: dict[str, Any]) -> str:
    conditions = (job.get("status") or {}).get("conditions") or []
    done = any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
    return "Complete" if done else "Created"


def job_times(jobs: Recorder, run: str) -> dict[str, dict[str, float]]:
    """step → {"Created", "Complete"} arrival times of its (single) Job in `run`."""
    out = {}
    with jobs.cond:
        for name, job in jobs.objects.items():
            labels = job["metadata"].get("labels") or {}
            if labels.get("mlkube.dev/pipeline-run") == run:
                out[labels["mlkube.dev/pipeline-step"]] = jobs.seen[name]
    return out


def measure(
    harnesses: list[Harness], chain_n: int, reps: int, cached_reps: int, dag: shapes.Dag
) -> None:
    for h in harnesses:  # warm-up: informers, connections, caches of both controllers
        h.run("warmup", shapes.chain(2), cached=False)
    for rep in range(reps):
        for h in harnesses if rep % 2 == 0 else reversed(harnesses):
            h.chain(f"chain-{rep}", chain_n)
    for h in harnesses:
        h.dag("dag-cold", dag, cached_rerun=False)
    for rep in range(cached_reps):
        for h in harnesses if rep % 2 == 0 else reversed(harnesses):
            h.dag(f"dag-cached-{rep}", dag, cached_rerun=True)
