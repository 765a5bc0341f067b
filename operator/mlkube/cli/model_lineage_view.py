"""`mlkube model lineage`: Model → the run that registered it → its steps and inputs → the
Models it read → their runs, as a tree (pure: objects come through a `Lookup`).

What is known is printed from where it is authoritative: the run's status and its spec
snapshot (`<run>-spec`) while the run exists; the Model's own `spec.lineage` once the run is
deleted (or replaced by a newer run of the same name), which is why registerModel records
datasets with digests in the Model itself. Walks stop at a depth limit and never revisit a
Model, so a cycle of Models cannot loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from mlkube.builders.pipeline_lineage import lineage_roots, upstream_steps
from mlkube.builders.pipeline_outcome import StepResult
from mlkube.builders.pipeline_register import ANNOTATION_RUN_UID, ANNOTATION_STEP

MAX_DEPTH: Final = 6
SNAPSHOT_KEY: Final = "pipeline.json"
SHORT_HEX: Final = 12


class Lookup(Protocol):
    def model(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def run(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def snapshot(self, namespace: str, run: str) -> Mapping[str, Any] | None: ...


@dataclass
class Node:
    label: str
    children: list[Node] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "children": [c.as_dict() for c in self.children]}


def short(digest: str | None) -> str:
    if not digest:
        return "no digest"
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:SHORT_HEX]}"


def render(node: Node) -> str:
    lines = [node.label]

    def walk(children: list[Node], prefix: str) -> None:
        for i, child in enumerate(children):
            last = i == len(children) - 1
            lines.append(prefix + ("└── " if last else "├── ") + child.label)
            walk(child.children, prefix + ("    " if last else "│   "))

    walk(node.children, "")
    return "\n".join(lines)


def lineage_tree(lookup: Lookup, namespace: str, name: str) -> Node:
    return _Walker(lookup).model(namespace, name, 0)


@dataclass
class _Walker:
    lookup: Lookup
    seen: set[tuple[str, str]] = field(default_factory=set)

    def model(self, namespace: str, name: str, depth: int) -> Node:
        obj = self.lookup.model(namespace, name)
        if obj is None:
            return Node(f"Model {namespace}/{name}: not found (deleted?)")
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        digest = (status.get("artifact") or {}).get("digest") or (spec.get("artifact") or {}).get(
            "digest"
        )
        node = Node(
            f"Model {namespace}/{name} ({spec.get('modelName')} version {spec.get('version')},"
            f" {status.get('phase') or 'Pending'}, {short(digest)})"
        )
        if (namespace, name) in self.seen or depth >= MAX_DEPTH:
            node.label += " (shown above)" if (namespace, name) in self.seen else " (…)"
            return node
        self.seen.add((namespace, name))
        lineage = spec.get("lineage") or {}
        run = lineage.get("run") or {}
        if not run:
            node.children = [Node("no run recorded"), *_datasets(lineage)]
        elif run.get("system") != "mlkube":
            node.children = [Node(f"run {run.get('id')} ({run.get('system') or 'unknown system'})"),
                             *_datasets(lineage)]  # fmt: skip
        else:
            node.children = [self.run(obj, str(run.get("id")), depth)]
        node.children += _served_with(status)
        return node

    def run(self, model: Mapping[str, Any], run_id: str, depth: int) -> Node:
        namespace, _, name = run_id.rpartition("/")
        notes = (model.get("metadata") or {}).get("annotations") or {}
        lineage = (model.get("spec") or {}).get("lineage") or {}
        run = self.lookup.run(namespace, name)
        if run is None:
            return Node(f"PipelineRun {run_id}: gone (not found); from the Model's lineage:",
                        [*_extras(lineage), *_datasets(lineage)])  # fmt: skip
        uid = notes.get(ANNOTATION_RUN_UID)
        if uid and (run.get("metadata") or {}).get("uid") != uid:
            return Node(
                f"PipelineRun {run_id}: replaced (a newer run has that name; the one that "
                "registered this Model is gone); from the Model's lineage:",
                [*_extras(lineage), *_datasets(lineage)],
            )
        node = Node(_run_label(run_id, run, notes.get(ANNOTATION_STEP)))
        steps = _snapshot_steps(self.lookup.snapshot(namespace, name))
        if not steps or notes.get(ANNOTATION_STEP) not in steps:
            node.children = [Node("spec snapshot unavailable; from the Model's lineage:",
                                  _datasets(lineage))]  # fmt: skip
            return node
        node.children = [*_extras(lineage)]
        for step in _upstream(steps, str(notes[ANNOTATION_STEP])):
            node.children.append(self.step(namespace, run, steps[step], lineage, depth))
        return node

    def step(
        self,
        namespace: str,
        run: Mapping[str, Any],
        spec: Mapping[str, Any],
        lineage: Mapping[str, Any],
        depth: int,
    ) -> Node:
        name = str(spec.get("name"))
        statuses = {s.get("name"): s for s in (run.get("status") or {}).get("steps") or []}
        status = statuses.get(name) or {}
        facts = [str(status.get("phase") or "Pending")]
        cache = status.get("cache") or {}
        if cache.get("hit"):
            facts.append(f"cache hit from run {cache.get('sourceRun') or '?'}")
        if spec.get("image"):
            facts.append(f"image {spec['image']}")
        env = status.get("environment") or {}
        if env.get("image"):
            facts.append(f"environment {env.get('name')}:{env.get('version')} {env['image']}")
        if status.get("imageDigest"):
            facts.append(f"imageID {status['imageDigest']}")
        node = Node(f"step {name} ({', '.join(facts)})")
        known = {d.get("name"): d for d in lineage.get("datasets") or []}
        for item in spec.get("inputs") or []:
            node.children.append(self.input(namespace, name, item, statuses, known, depth))
        return node

    def input(
        self,
        namespace: str,
        step: str,
        item: Mapping[str, Any],
        statuses: Mapping[Any, Mapping[str, Any]],
        known: Mapping[Any, Mapping[str, Any]],
        depth: int,
    ) -> Node:
        label = f"input {item.get('name')}"
        recorded = known.get(f"{step}/{item.get('name')}") or {}
        if item.get("uri"):
            digest = item.get("digest") or recorded.get("digest")
            return Node(f"{label}: {item['uri']} ({short(digest)})")
        if item.get("model"):
            model = str(item["model"])
            return Node(f"{label} ← Model {model} ({short(recorded.get('digest'))})",
                        [self.model(namespace, model, depth + 1)])  # fmt: skip
        ref = item.get("fromStep") or {}
        if ref:
            outputs = (statuses.get(ref.get("step")) or {}).get("outputs") or []
            out: Mapping[str, Any] = next(
                (o for o in outputs if o.get("name") == ref.get("output")), {}
            )
            where = f"{out.get('uri')}, {short(out.get('digest'))}" if out else "not recorded"
            return Node(f"{label} ← step {ref.get('step')} output {ref.get('output')} ({where})")
        return Node(f"{label} = parameter {item.get('fromParameter')}")


def _run_label(run_id: str, run: Mapping[str, Any], step: str | None) -> str:
    spec, status = run.get("spec") or {}, run.get("status") or {}
    trigger = spec.get("trigger") or {}
    facts = [f"pipeline {spec.get('pipeline')}", str(status.get("phase") or "Pending")]
    if trigger:
        named = f" {trigger['name']}" if trigger.get("name") else ""
        facts.append(f"trigger {trigger.get('type')}{named}")
    if status.get("startTime"):
        facts.append(f"started {status['startTime']}")
    return f"PipelineRun {run_id} ({', '.join(facts)}), step {step}"


def _snapshot_steps(configmap: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    text = str(((configmap or {}).get("data") or {}).get(SNAPSHOT_KEY) or "")
    try:
        spec = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(s.get("name")): s for s in spec.get("steps") or [] if isinstance(s, Mapping)}


def _upstream(steps: Mapping[str, Mapping[str, Any]], registering: str) -> list[str]:
    results = {n: StepResult(n, "", spec=s) for n, s in steps.items()}
    return upstream_steps(lineage_roots(steps[registering]), results)


def _datasets(lineage: Mapping[str, Any]) -> list[Node]:
    return [Node(f"dataset {d.get('name')}: {d.get('uri')} ({short(d.get('digest'))})")
            for d in lineage.get("datasets") or []]  # fmt: skip


def _extras(lineage: Mapping[str, Any]) -> list[Node]:
    nodes = []
    code = lineage.get("code") or {}
    if code:
        nodes.append(Node(f"code {code.get('repository')} @ {code.get('commit')}"))
    if (lineage.get("environment") or {}).get("image"):
        nodes.append(Node(f"image {lineage['environment']['image']}"))
    params = lineage.get("parameters") or {}
    if params:
        nodes.append(Node("parameters " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))))
    metrics = lineage.get("metrics") or {}
    if metrics:
        nodes.append(Node("metrics " + ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items()))))
    return nodes


def _served_with(status: Mapping[str, Any]) -> list[Node]:
    """The environments endpoints serve the Model with (status.environments), image by digest."""
    return [Node(f"served with environment {e.get('name')}:{e.get('version')} ({e.get('image')},"
                 f" {e.get('kind')} {e.get('endpoint')}/{e.get('deployment')})")
            for e in status.get("environments") or []]  # fmt: skip
