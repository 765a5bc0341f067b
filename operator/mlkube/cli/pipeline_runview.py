"""The text of `mlkube pipeline runs list|show` (pure: a PipelineRun dict in, text out).

`runs show` is the audit view of a run: one row per step in DAG order (phase, attempts, cache
decision, duration), then each step's outputs with their digests and its metrics, the Models
it registered, what started it, and the DAG with each step's phase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from mlkube.cli.model_view import format_age
from mlkube.cli.pipeline_dagview import render_dag
from mlkube.cli.pipeline_progress import cache_text, format_seconds, parse_time, step_duration
from mlkube.cli.pipeline_view import condition, table
from mlkube.reconcile.pipeline_dag import DagError, Graph, topological_order


def run_duration(status: Mapping[str, Any], now: datetime) -> str:
    start = parse_time(status.get("startTime"))
    if start is None:
        return "-"
    end = parse_time(status.get("completionTime")) or now
    return format_seconds(max(0.0, (end - start).total_seconds()))


def trigger_text(spec: Mapping[str, Any]) -> str:
    trig = spec.get("trigger") or {}
    text = str(trig.get("type") or "manual")
    if trig.get("name"):
        text += f" {trig['name']}"
    if trig.get("detail"):
        text += f" ({trig['detail']})"
    return text


def _created(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(meta.get("namespace")), str(meta.get("creationTimestamp") or ""), str(meta["name"]))


def render_runs(items: Iterable[Mapping[str, Any]], now: datetime, namespaces: bool) -> str:
    head = ("NAMESPACE",) if namespaces else ()
    rows = [(*head, "NAME", "PIPELINE", "PHASE", "PROGRESS", "TRIGGER", "DURATION", "AGE")]
    for obj in sorted(items, key=_created):
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        rows.append((
            *((str(meta.get("namespace")),) if namespaces else ()),
            str(meta["name"]), str(spec.get("pipeline")),
            str(status.get("phase") or "Pending"), str(status.get("progress") or "-"),
            str((spec.get("trigger") or {}).get("type") or "manual"),
            run_duration(status, now), format_age(meta.get("creationTimestamp"), now),
        ))  # fmt: skip
    return table(rows, "No pipeline runs found.")


def _ordered(steps: list[Mapping[str, Any]], graph: Graph | None) -> list[Mapping[str, Any]]:
    order: dict[str, int] = {}
    if graph is not None:
        try:
            order = {n: i for i, n in enumerate(topological_order(graph))}
        except DagError:
            order = {}
    return sorted(steps, key=lambda s: (order.get(str(s.get("name")), 1 << 30), str(s.get("name"))))


def _output_lines(step: Mapping[str, Any]) -> list[str]:
    lines = []
    for out in step.get("outputs") or []:
        kind = out.get("type", "artifact")
        if kind == "parameter":
            lines.append(f"    {out['name']} = {out.get('value', '')}")
        elif kind == "artifact":
            size = f", {out['size']} bytes" if out.get("size") is not None else ""
            lines.append(f"    {out['name']}: {out.get('uri', '-')}")
            lines.append(f"      {out.get('digest', 'no digest')}{size}")
    metrics = step.get("metrics") or {}
    if metrics:
        lines.append("    metrics: " + ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())))
    return lines


def render_run(run: Mapping[str, Any], now: datetime, graph: Graph | None) -> str:
    meta, spec, status = run["metadata"], run.get("spec") or {}, run.get("status") or {}
    phase = status.get("phase") or "Pending"
    lines = [
        f"Name:        {meta['name']}",
        f"Namespace:   {meta.get('namespace')}",
        f"Pipeline:    {spec.get('pipeline')}"
        + (f" (snapshot {status['pipelineDigest']})" if status.get("pipelineDigest") else ""),
        f"Phase:       {phase}"
        + (f" ({status['progress']} steps)" if status.get("progress") else "")
        + (f": {status['message']}" if status.get("message") else ""),
        f"Trigger:     {trigger_text(spec)}",
        f"Started:     {status.get('startTime') or '-'}   duration {run_duration(status, now)}",
    ]
    if spec.get("cachePolicy", "Default") != "Default":
        lines.append(f"Cache:       {spec['cachePolicy']}")
    if spec.get("resumeFrom"):
        rerun = ", ".join(spec.get("rerunSteps") or []) or "none"
        lines.append(f"Resumes:     {spec['resumeFrom']} (rerun: {rerun})")
    if spec.get("cancel") and phase not in ("Cancelled", "Failed", "Succeeded"):
        lines.append("Cancel:      requested")
    params = status.get("parameters") or spec.get("parameters") or {}
    if params:
        lines.append("Parameters:  " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
    steps = _ordered(list(status.get("steps") or []), graph)
    rows: list[tuple[str, ...]] = [("STEP", "PHASE", "ATTEMPTS", "CACHE", "DURATION")]
    for st in steps:
        rows.append((str(st.get("name")), str(st.get("phase") or "Pending"),
                     str(st.get("attempts") or 0), cache_text(st) or "-",
                     step_duration(st) or "-"))  # fmt: skip
    lines += ["", table(rows, "No steps recorded yet.")]
    details = []
    for st in steps:
        body = _output_lines(st)
        if st.get("message") and st.get("phase") != "Succeeded":
            body.insert(0, f"    message: {st['message']}")
        if body:
            details += [f"  {st.get('name')}:", *body]
    if details:
        lines += ["Outputs:", *details]
    models = status.get("producedModels") or []
    lines.append("Produced models: " + (", ".join(models) if models else "none"))
    ready = condition(run, "Ready")
    if ready.get("reason"):
        lines.append(f"Ready:       {ready.get('status')} ({ready.get('reason')})")
    if graph is not None:
        phases = {str(s.get("name")): str(s.get("phase") or "Pending") for s in steps}
        lines += render_dag(graph, {n: phases.get(n, "Pending") for n in graph})
    return "\n".join(lines)
