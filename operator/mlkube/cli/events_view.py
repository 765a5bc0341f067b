"""What `mlkube events` prints: one line per received event, sink status (table and details)
and the event catalogue. Pure functions, so the unit tests read exactly what a user reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from mlkube.cli.events_receiver import ReceivedEvent
from mlkube.cli.model_view import format_age, short_digest
from mlkube.events.catalogue import TYPE_PREFIX, EventType

AZURE_PREFIX: Final = "Microsoft.MachineLearningServices."
SHORT_ID: Final = 12
DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_VALUE: Final = 60
# The data fields worth a glance, per event name (the type without prefix and version) or
# Azure type; other fields are in `--json`.
KEY_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "model.registered": ("name", "version", "framework", "digest"),
    "model.verified": ("name", "version", "digest", "size"),
    "model.deleted": ("name", "version"),
    "endpoint.deployment.ready": ("deployment", "model", "modelVersion", "replicas"),
    "endpoint.traffic.changed": ("traffic", "mirror", "previous"),
    "rollout.started": ("stable", "candidate", "revision"),
    "rollout.step": ("candidate", "stepIndex", "step", "weight", "mirror"),
    "rollout.paused": ("candidate", "stepIndex", "reason", "message"),
    "rollout.promoted": ("candidate", "traffic"),
    "rollout.aborted": ("candidate", "metric", "value", "condition", "message"),
    "drift.detected": ("deployment", "model", "driftedRatio", "topFeatures"),
    "drift.ended": ("deployment", "model", "startedAt", "endedAt"),
    "batchjob": ("phase", "deployment", "counts", "message"),
    "pipelinerun": ("pipeline", "phase", "trigger", "producedModels", "message"),
    "ModelRegistered": ("modelName", "modelVersion"),
    "ModelDeployed": ("serviceName", "modelIds"),
    "RunCompleted": ("experimentName", "runId", "runType"),
    "RunStatusChanged": ("experimentName", "runId", "runType", "runStatus"),
    "DatasetDriftDetected": ("targetDatasetId", "driftCoefficient", "startTime"),
}
SINK_COLUMNS: Final = (
    "NAME", "READY", "DELIVERED", "FAILED", "PENDING", "THROTTLED-UNTIL", "LAST-FAILURE", "AGE"
)  # fmt: skip


def short_type(event_type: str) -> str:
    """dev.mlkube.model.registered.v1 -> model.registered.v1 (Azure types likewise)."""
    for prefix in (TYPE_PREFIX, AZURE_PREFIX):
        if event_type.startswith(prefix):
            return event_type[len(prefix) :]
    return event_type


def _event_name(event_type: str) -> str:
    name = short_type(event_type)
    head, _, version = name.rpartition(".")
    return head if head and version[:1] == "v" and version[1:].isdigit() else name


def _fields_for(event_type: str) -> tuple[str, ...] | None:
    name = _event_name(event_type)
    return KEY_FIELDS.get(name) or KEY_FIELDS.get(name.split(".")[0])


def format_value(value: Any) -> str:
    """Compact: splits as a=1,b=2, lists comma-joined, long text cut."""
    if isinstance(value, Mapping):
        text = ",".join(f"{k}={format_value(v)}" for k, v in value.items()) or "-"
    elif isinstance(value, list):
        text = ",".join(_list_item(v) for v in value) or "-"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str) and DIGEST.match(value):
        text = short_digest(value)  # as `model list` shows it; --json has it whole
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "\u2026"


def _list_item(value: Any) -> str:
    # topFeatures and the like are objects: their name is what a glance needs.
    if isinstance(value, Mapping) and "name" in value:
        return str(value["name"])
    return format_value(value)


def key_fields(event_type: str, data: Any) -> list[str]:
    """`field=value` for the type's key fields present in data (the first scalars otherwise)."""
    if not isinstance(data, Mapping):
        return [] if data is None else [format_value(data)]
    names = _fields_for(event_type)
    if names is None:
        names = tuple(k for k, v in data.items() if not isinstance(v, Mapping | list))[:5]
    return [f"{name}={format_value(data[name])}" for name in names
            if data.get(name) not in (None, "", [], {})]  # fmt: skip


def render_event(event: ReceivedEvent, received_at: str, duplicate: bool = False) -> str:
    """One line: time, type, subject, short id, key data fields."""
    parts = [
        event.time or received_at,
        short_type(event.type),
        event.subject or "-",
        f"id={event.id[:SHORT_ID]}",
        *key_fields(event.type, event.data),
    ]
    if duplicate:
        parts.append("(duplicate: delivered again, same id)")
    return "  ".join(parts)


def render_event_json(event: ReceivedEvent) -> str:
    return json.dumps(event.to_json(), sort_keys=True, separators=(",", ":"))


def render_catalogue(types: Sequence[EventType]) -> str:
    """`mlkube events types`: one line per type, aligned, with when it is emitted."""
    width = max(len(t.type) for t in types)
    kind_width = max(len(t.kind) for t in types)
    return "\n".join(f"{t.type.ljust(width)}  {t.kind.ljust(kind_width)}  {t.when}" for t in types)


def _ready(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def _count(value: Any) -> str:
    return "-" if value is None else str(value)


def format_failure(failure: Mapping[str, Any] | None) -> str:
    if not failure:
        return "-"
    status = failure.get("status")
    what = f"HTTP {status}" if status else "no answer"
    message = str(failure.get("message") or "").strip()
    return f"{failure.get('time', '?')} {what}" + (f": {message}" if message else "")


def sink_rows(items: Iterable[Mapping[str, Any]], now: datetime) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for obj in sorted(items, key=lambda o: str((o.get("metadata") or {}).get("name"))):
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        failure = status.get("lastFailure") or {}
        rows.append((
            str(meta.get("name")),
            str(_ready(obj).get("status", "Unknown")),
            _count(status.get("delivered")),
            _count(status.get("failed")),
            _count(status.get("pending")),
            str(status.get("throttledUntil") or "-"),
            _short_failure(failure),
            format_age(meta.get("creationTimestamp"), now),
        ))  # fmt: skip
    return rows


def _short_failure(failure: Mapping[str, Any]) -> str:
    if not failure:
        return "-"
    status = failure.get("status")
    return f"{failure.get('time', '?')} " + (f"HTTP {status}" if status else "no answer")


def render_sinks(items: Iterable[Mapping[str, Any]], now: datetime) -> str:
    rows = sink_rows(items, now)
    if not rows:
        return "No event sinks found."
    table = [SINK_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(SINK_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)  # fmt: skip


def render_sink(obj: Mapping[str, Any], now: datetime) -> str:
    """`mlkube events sinks show NAME`: destination, filters and the delivery record."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    ready = _ready(obj)
    destination = spec.get("uri") or _ref(spec.get("ref") or {})
    reason = ready.get("reason", "-")
    lines = [
        f"Name:            {meta.get('name')}",
        f"Namespace:       {meta.get('namespace')}",
        f"Destination:     {destination}",
        f"Sending to:      {status.get('sinkUri') or '-'}",
        f"Ready:           {ready.get('status', 'Unknown')} ({reason})"
        + (f": {ready['message']}" if ready.get("message") else ""),
        f"Types:           {', '.join(spec.get('types') or []) or 'all'}",
        f"Namespaces:      {', '.join(spec.get('namespaces') or []) or 'the sink namespace'}",
        f"Mode/format:     {spec.get('mode', 'binary')}/{spec.get('format', 'cloudevents')}",
        f"Signed:          {'yes' if spec.get('signing') else 'no'}",
        f"Delivered:       {_count(status.get('delivered'))}",
        f"Failed:          {_count(status.get('failed'))}",
        f"Pending:         {_count(status.get('pending'))}",
        f"Last delivered:  {status.get('lastDeliveredAt') or '-'}",
        f"Last failure:    {format_failure(status.get('lastFailure'))}",
        f"Throttled until: {status.get('throttledUntil') or '-'}",
        f"Age:             {format_age(meta.get('creationTimestamp'), now)}",
    ]
    dead_letter = status.get("deadLetterSinkUri")
    if dead_letter:
        lines.insert(4, f"Dead letters to: {dead_letter}")
    if status.get("message"):
        lines.append(f"Message:         {status['message']}")
    return "\n".join(lines)


def _ref(ref: Mapping[str, Any]) -> str:
    if not ref:
        return "-"
    where = f"{ref.get('name')}" + (f".{ref['namespace']}" if ref.get("namespace") else "")
    port = f":{ref['port']}" if ref.get("port") else ""
    return f"Service {where}{port}{ref.get('path') or '/'}"
