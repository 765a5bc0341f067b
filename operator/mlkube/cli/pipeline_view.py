"""Pure helpers of `mlkube pipeline`: the manifest `create` reads, the run `run` creates, and
the text of `list` and `show`.

Plain dicts in, text out, so every piece is tested without a cluster; `cli/pipeline.py` does
the I/O. A Pipeline is checked by the same pydantic kind the operator uses (cycles, unknown
outputs and placeholders in one message) before the API server sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.pipeline import PipelineSpec
from mlkube.api.pipeline_run import PipelineRunSpec
from mlkube.cli import manifests
from mlkube.cli.batch_view import short_errors
from mlkube.cli.errors import CliError
from mlkube.cli.model_view import format_age
from mlkube.cli.pipeline_dagview import render_dag
from mlkube.contract import API_VERSION, KIND_PIPELINE, KIND_PIPELINE_RUN
from mlkube.reconcile.pipeline_dag import graph_of

KINDS: Final = (KIND_PIPELINE, KIND_PIPELINE_RUN)


def check(kind: str, spec: Mapping[str, Any], name: str) -> PipelineSpec | PipelineRunSpec:
    model = PipelineSpec if kind == KIND_PIPELINE else PipelineRunSpec
    try:
        return model.model_validate(dict(spec))
    except ValidationError as exc:
        raise CliError(f"{kind} {name}: {short_errors(exc)}") from exc


def read_manifests(text: str, namespace: str) -> list[dict[str, Any]]:
    """Pipeline (and PipelineRun) documents from YAML, checked locally, in `namespace` when
    they name none."""
    return manifests.read_manifests(text, namespace, KINDS, check, (KIND_PIPELINE_RUN,))


def parse_parameters(items: Sequence[str] | None) -> dict[str, str]:
    """`-p k=v` flags as a map (values are text; the last of a repeated name wins)."""
    values: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"-p {item!r}: expected NAME=VALUE")
        values[name.strip()] = value
    return values


def build_run(
    pipeline: str,
    namespace: str,
    *,
    parameters: Mapping[str, str],
    name: str | None = None,
    cache_policy: str = "Default",
    resume_from: str | None = None,
    rerun_steps: Sequence[str] = (),
) -> dict[str, Any]:
    """A PipelineRun; checked by the kind (the API server checks it again)."""
    spec: dict[str, Any] = {"pipeline": pipeline}
    if parameters:
        spec["parameters"] = dict(parameters)
    if cache_policy != "Default":
        spec["cachePolicy"] = cache_policy
    if resume_from:
        spec["resumeFrom"] = resume_from
    if rerun_steps:
        spec["rerunSteps"] = list(dict.fromkeys(rerun_steps))
    meta: dict[str, Any] = {"namespace": namespace}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{pipeline[:50]}-"
    check(KIND_PIPELINE_RUN, spec, name or meta["generateName"])
    return {"apiVersion": API_VERSION, "kind": KIND_PIPELINE_RUN, "metadata": meta, "spec": spec}


def check_run_parameters(pipeline: Mapping[str, Any], values: Mapping[str, str]) -> None:
    """Unknown, missing and mistyped -p values, said before a run is created."""
    spec = check(KIND_PIPELINE, pipeline.get("spec") or {}, pipeline["metadata"]["name"])
    assert isinstance(spec, PipelineSpec)
    try:
        spec.resolve_parameters(values)
    except ValueError as exc:
        raise CliError(f"Pipeline {pipeline['metadata']['name']}: {exc}") from exc


def dag_of(spec: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]] | None:
    """The step graph of a Pipeline spec, None when the spec does not validate."""
    try:
        return graph_of(PipelineSpec.model_validate(dict(spec or {})).steps)
    except ValidationError:
        return None


def table(rows: list[tuple[str, ...]], empty: str) -> str:
    if len(rows) == 1:
        return empty
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def render_pipelines(items: Iterable[Mapping[str, Any]], now: datetime, namespaces: bool) -> str:
    head = ("NAMESPACE",) if namespaces else ()
    rows = [(*head, "NAME", "STEPS", "READY", "LAST RUN", "RUNS (active/ok/failed)", "AGE")]
    for obj in sorted(items, key=lambda o: (o["metadata"].get("namespace"), o["metadata"]["name"])):
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        runs = status.get("runs") or {}
        rows.append((
            *((str(meta.get("namespace")),) if namespaces else ()),
            str(meta["name"]), str(len(spec.get("steps") or [])),
            str(condition(obj, "Ready").get("status") or "-"),
            str(status.get("lastRun") or "-"),
            f"{runs.get('active', 0)}/{runs.get('succeeded', 0)}/{runs.get('failed', 0)}",
            format_age(meta.get("creationTimestamp"), now),
        ))  # fmt: skip
    return table(rows, "No pipelines found.")


def _step_line(step: Mapping[str, Any]) -> str:
    kind = step.get("type") or "container"
    if kind == "container":
        what = str(step.get("image"))
    else:
        block = step.get(kind) or {}
        what = kind + (f" {block.get('modelName')}" if kind == "registerModel" else "")
        what += f" endpoint {block['endpoint']}" if block.get("endpoint") else ""
    extra = []
    if step.get("when"):
        extra.append(f"when {step['when']}")
    retry = (step.get("retry") or {}).get("limit")
    if retry:
        extra.append(f"retry {retry}")
    if (step.get("cache") or {}).get("enabled") is False:
        extra.append("cache off")
    if step.get("continueOnFailure"):
        extra.append("continueOnFailure")
    return f"  {step.get('name')}: {what}" + (f" ({'; '.join(extra)})" if extra else "")


def render_pipeline(obj: Mapping[str, Any], now: datetime) -> str:
    """`mlkube pipeline show`: parameters, steps, schedules, triggers with status, the DAG."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    ready = condition(obj, "Ready")
    lines = [
        f"Name:        {meta['name']}",
        f"Namespace:   {meta.get('namespace')}",
        f"Ready:       {ready.get('status') or '-'}"
        + (f" ({ready['message']})" if ready.get("message") else ""),
    ]
    if spec.get("description"):
        lines.append(f"Description: {spec['description']}")
    runs = status.get("runs") or {}
    lines.append(
        f"Runs:        {runs.get('active', 0)} active, {runs.get('succeeded', 0)} "
        f"succeeded, {runs.get('failed', 0)} failed; last {status.get('lastRun') or '-'}"
    )
    lines.append(f"Age:         {format_age(meta.get('creationTimestamp'), now)}")
    params = spec.get("parameters") or []
    lines.append("Parameters:" + ("" if params else " none"))
    for p in params:
        default = f" = {p['default']}" if "default" in p else " (required)"
        lines.append(f"  {p['name']} ({p.get('type', 'string')}){default}"
                     + (f"  {p['description']}" if p.get("description") else ""))  # fmt: skip
    lines.append("Steps:")
    lines += [_step_line(s) for s in spec.get("steps") or []]
    lines += _schedules(spec, status) + _triggers(spec, status)
    graph = dag_of(spec)
    lines += render_dag(graph) if graph is not None else ["(no DAG view: the spec is invalid)"]
    return "\n".join(lines)


def _by_name(items: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(i.get("name")): i for i in items}


def _schedules(spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[str]:
    found = _by_name(status.get("schedules") or [])
    lines = []
    for s in spec.get("schedules") or []:
        st = found.get(s["name"], {})
        zone = f" {s['timeZone']}" if s.get("timeZone") else ""
        lines.append(f"  {s['name']}: {s['cron']}{zone}, {s.get('concurrencyPolicy', 'Forbid')}"
                     + (" (suspended)" if s.get("suspend") else ""))  # fmt: skip
        lines.append(f"    last {st.get('lastScheduleTime') or '-'} ({st.get('lastRun') or '-'}),"
                     f" next {st.get('nextScheduleTime') or '-'}")  # fmt: skip
        if st.get("message"):
            lines.append(f"    {st['message']}")
    return ["Schedules:" + ("" if lines else " none"), *lines]


def _triggers(spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[str]:
    found = _by_name(status.get("triggers") or [])
    lines = []
    for t in spec.get("triggers") or []:
        st = found.get(t["name"], {})
        if t.get("onDrift"):
            d = t["onDrift"]
            what = (
                f"onDrift endpoint {d['endpoint']}"
                + (f"/{d['deployment']}" if d.get("deployment") else "")
                + f", cooldown {d.get('cooldown', '1h')}, max {d.get('maxRunsPerDay', 3)}/day"
            )
        else:
            n = t.get("onNewData") or {}
            what = f"onNewData {n.get('uri')} every {n.get('pollInterval', '5m')}"
        lines.append(f"  {t['name']}: {what}")
        lines.append(f"    last fired {st.get('lastFired') or '-'} ({st.get('lastRun') or '-'}),"
                     f" {st.get('firedToday', 0)} today")  # fmt: skip
        if st.get("message"):
            lines.append(f"    {st['message']}")
    return ["Triggers:" + ("" if lines else " none"), *lines]
