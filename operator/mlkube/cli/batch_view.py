"""Pure helpers of `mlkube batch`: manifests, the BatchJob `invoke` creates, where a job's files
are, which index owns a mini-batch, and the text of `jobs list|show`.

Takes and returns plain dicts (as the API returns them), so every piece is tested without a
cluster; `mlkube.cli.batch` and `mlkube.cli.batch_jobs` do the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from mlkube.api.batch import BatchEndpointSpec, parse_mini_batch_size
from mlkube.api.batch_job import BatchJobSpec
from mlkube.builders.batch_plan import PlanError, index_of
from mlkube.cli import manifests
from mlkube.cli.batch_progress import format_count, format_error, render_counts
from mlkube.cli.errors import CliError
from mlkube.cli.model_view import format_age
from mlkube.contract import API_VERSION, KIND_BATCH_ENDPOINT, KIND_BATCH_JOB

SPECS: Final[dict[str, type[BaseModel]]] = {
    KIND_BATCH_ENDPOINT: BatchEndpointSpec,
    KIND_BATCH_JOB: BatchJobSpec,
}
TERMINAL: Final = frozenset({"Succeeded", "Failed", "Cancelled"})
INTERNAL: Final = "_mlkube"
DEFAULT_FILE_NAME: Final = "predictions.csv"


def read_manifests(text: str, namespace: str) -> list[dict[str, Any]]:
    """BatchEndpoint and BatchJob documents from YAML, checked locally (the API server's CEL
    rules check the rest) and placed in `namespace` when they name none."""
    return manifests.read_manifests(text, namespace, tuple(SPECS), check_spec, (KIND_BATCH_JOB,))


def check_spec(kind: str, spec: Mapping[str, Any], name: str) -> None:
    try:
        SPECS[kind].model_validate(spec)
    except ValidationError as exc:
        raise CliError(f"{kind} {name}: {short_errors(exc)}") from exc


def short_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"spec.{where}: {msg}" if where else msg)
    return "; ".join(parts)


def mini_batch_size(text: str) -> int | str:
    """`--mini-batch-size 10` (files) or `10000rows`, as the API field takes it."""
    try:
        parsed = parse_mini_batch_size(text)
    except ValueError as exc:
        raise CliError(f"--mini-batch-size: {exc}") from exc
    return parsed.count if parsed.unit == "files" else f"{parsed.count}rows"


def build_job(
    endpoint: str,
    namespace: str,
    *,
    input_uri: str,
    input_type: str = "folder",
    input_format: str = "auto",
    name: str | None = None,
    deployment: str | None = None,
    output_uri: str | None = None,
    size: str | None = None,
    instance_count: int | None = None,
) -> dict[str, Any]:
    """The BatchJob `mlkube batch invoke` creates (generateName `<endpoint>-` without --name)."""
    spec: dict[str, Any] = {
        "endpoint": endpoint,
        "input": {"uri": input_uri, "type": input_type, "format": input_format},
    }
    if deployment:
        spec["deployment"] = deployment
    if output_uri:
        spec["output"] = {"uri": output_uri}
    overrides: dict[str, Any] = {}
    if size is not None:
        overrides["miniBatchSize"] = mini_batch_size(size)
    if instance_count is not None:
        overrides["instanceCount"] = instance_count
    if overrides:
        spec["overrides"] = overrides
    meta: dict[str, Any] = {"namespace": namespace}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{endpoint[:57]}-"
    check_spec(KIND_BATCH_JOB, spec, name or endpoint)
    return {"apiVersion": API_VERSION, "kind": KIND_BATCH_JOB, "metadata": meta, "spec": spec}


def deployment_of(endpoint: Mapping[str, Any], wanted: str | None) -> dict[str, Any]:
    """The endpoint's deployment a job runs (named, else the default, else the only one)."""
    spec = endpoint.get("spec") or {}
    deployments = {str(d.get("name")): dict(d) for d in spec.get("deployments") or []}
    name = wanted or spec.get("defaultDeployment")
    if name is None and len(deployments) == 1:
        name = next(iter(deployments))
    known = ", ".join(sorted(deployments)) or "none"
    if name is None:
        raise CliError(f"the endpoint has no defaultDeployment: pass --deployment ({known})")
    if name not in deployments:
        raise CliError(f"no deployment {name!r} in this endpoint (have: {known})")
    return deployments[name]


def find_deployment(endpoint: Mapping[str, Any] | None, name: str | None) -> dict[str, Any] | None:
    """The named deployment of an endpoint, None when either is gone or unknown."""
    for dep in ((endpoint or {}).get("spec") or {}).get("deployments") or []:
        if dep.get("name") == name:
            return dict(dep)
    return None


# -- where a job's files are ----------------------------------------------------------------
def output_uri(job: Mapping[str, Any]) -> str | None:
    status, spec = job.get("status") or {}, job.get("spec") or {}
    uri = status.get("outputUri") or (spec.get("output") or {}).get("uri")
    return str(uri).rstrip("/") if uri else None


def output_settings(job: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> dict[str, Any]:
    """Output action/fileName/format: the job's override, else the deployment's, else Azure's."""
    found = ((job.get("spec") or {}).get("overrides") or {}).get("output")
    found = found or (deployment or {}).get("output") or {}
    return {"action": "appendRow", "fileName": DEFAULT_FILE_NAME, "format": "csv", **found}


def predictions_uri(job: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> str | None:
    out, settings = output_uri(job), output_settings(job, deployment)
    if out is None or settings["action"] != "appendRow":
        return None
    return f"{out}/{settings['fileName']}"


def dead_letter_uri(job: Mapping[str, Any]) -> str | None:
    out = output_uri(job)
    return f"{out}/{INTERNAL}/deadletter/" if out else None


def index_of_mini_batch(
    mini_batch: int, plan: Mapping[str, Any], work: Sequence[int] | None
) -> int:
    """The index of the score Job whose shard holds `mini_batch` (contiguous balanced shards
    of the plan's mini-batches, or of a resumed job's work list)."""
    indexes = int(plan.get("indexes") or 0)
    ids = list(work) if work is not None else range(int(plan.get("miniBatches") or 0))
    if indexes <= 0 or not ids:
        raise CliError("the job's plan has no indexes yet (is it still planning?)")
    try:
        position = ids.index(mini_batch)
    except ValueError:
        where = "this resumed job's work list (it reused that part)" if work else "the plan"
        raise CliError(f"mini-batch {mini_batch} is not in {where}") from None
    try:
        return index_of(position, len(ids), indexes)
    except PlanError as exc:
        raise CliError(str(exc)) from exc


# -- rendering ------------------------------------------------------------------------------
def render_table(items: Iterable[Mapping[str, Any]], now: datetime, namespaces: bool) -> str:
    head = ("NAMESPACE",) if namespaces else ()
    rows = [(*head, "NAME", "ENDPOINT", "DEPLOYMENT", "PHASE", "PROGRESS", "ITEMS OK", "FAILED",
             "AGE")]  # fmt: skip
    for obj in sorted(items, key=_table_key):
        meta, spec, status = (
            obj.get("metadata") or {},
            obj.get("spec") or {},
            obj.get("status") or {},
        )
        items_ = status.get("items") or {}
        ns = (str(meta.get("namespace")),) if namespaces else ()
        rows.append((
            *ns,
            str(meta.get("name")),
            str(spec.get("endpoint")),
            str(status.get("deployment") or spec.get("deployment") or "-"),
            str(status.get("phase") or "Pending"),
            f"{int(status.get('progress') or 0)}%",
            format_count(items_.get("succeeded")),
            format_count(items_.get("failed")),
            format_age(meta.get("creationTimestamp"), now),
        ))  # fmt: skip
    if len(rows) == 1:
        return "No batch jobs found."
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def _table_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace")), str(meta.get("creationTimestamp")), str(meta.get("name")))


def render_details(
    job: Mapping[str, Any], now: datetime, deployment: Mapping[str, Any] | None = None
) -> str:
    """`mlkube batch jobs show` in text form."""
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    source = spec.get("input") or {}
    dep = status.get("deployment") or spec.get("deployment") or "(default)"
    phase = status.get("phase") or "Pending"
    lines = [
        f"Name:          {meta.get('name')}",
        f"Namespace:     {meta.get('namespace')}",
        f"Endpoint:      {spec.get('endpoint')} (deployment {dep}, model "
        f"{status.get('model') or '-'})",
        f"Input:         {source.get('uri')} ({source.get('type', 'folder')}, "
        f"{source.get('format', 'auto')})",
        f"Phase:         {phase}" + (f": {status['message']}" if status.get("message") else ""),
        f"Progress:      {render_counts(status)}",
    ]
    env = status.get("environment") or {}
    if env.get("image"):
        lines.insert(3, f"Environment:   {env.get('name')}:{env.get('version')} {env['image']}")
    mbs, items = status.get("miniBatches") or {}, status.get("items") or {}
    plan = status.get("plan") or {}
    estimate = "~" if plan.get("itemsEstimated") else ""
    lines += [
        f"Mini-batches:  {format_count(mbs.get('total'))} total, "
        f"{format_count(mbs.get('succeeded'))} succeeded, {format_count(mbs.get('failed'))} "
        f"failed, {format_count(mbs.get('retried'))} retried",
        f"Items:         {estimate}{format_count(items.get('total'))} total, "
        f"{format_count(items.get('succeeded'))} succeeded, {format_count(items.get('failed'))} "
        "failed",
    ]
    if plan:
        lines.append(
            f"Plan:          {plan.get('digest')} ({format_count(plan.get('miniBatches'))} "
            f"mini-batches, {estimate}{format_count(plan.get('items'))} items, "
            f"{plan.get('indexes')} indexes)"
        )
    if spec.get("resumeFrom"):
        lines.append(f"Resumed from:  {spec['resumeFrom']}")
    if status.get("job"):
        lines.append(f"Indexed Job:   {status['job']}")
    started, ended = status.get("startTime"), status.get("completionTime")
    lines.append(f"Started:       {started or '-'}" + (f"   Completed: {ended}" if ended else ""))
    lines.append(f"Age:           {format_age(meta.get('creationTimestamp'), now)}")
    lines.append(f"Output:        {output_uri(job) or '- (chosen by the operator)'}")
    settings = output_settings(job, deployment)
    if settings["action"] == "appendRow":
        where = predictions_uri(job, deployment)
        if where and phase in ("Failed", "Cancelled"):
            where += " (not written: the merge runs only when the job succeeds)"
        elif where and phase != "Succeeded":
            where += " (written by the merge, at the end)"
        lines.append(f"Predictions:   {where or '-'}")
    else:
        lines.append("Predictions:   none (output action summaryOnly)")
    errors = status.get("lastErrors") or []
    if items.get("failed") or errors:
        lines.append(f"Dead letters:  {dead_letter_uri(job) or '-'}")
    if errors:
        lines.append("Last errors:")
        lines += ["  " + format_error(e) for e in errors]
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        for cond in conditions:
            lines.append(f"  {cond.get('type')}={cond.get('status')} {cond.get('reason', '')}"
                         + (f": {cond['message']}" if cond.get("message") else ""))  # fmt: skip
    return "\n".join(lines)
