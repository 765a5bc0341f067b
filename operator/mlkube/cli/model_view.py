"""Pure rendering of Model objects for `mlkube model list` and `mlkube model show`.

Takes plain dicts (as the API returns them) and a `now`, so output is testable to the byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import yaml

from mlkube.builders.pipeline_register import ANNOTATION_STEP
from mlkube.cli.progress import format_bytes
from mlkube.contract import LABEL_ARCHIVED, LABEL_MODEL, LABEL_PIPELINE_RUN, LABEL_VERSION

COLUMNS: Final = ("NAME", "MODEL", "VERSION", "FRAMEWORK", "PHASE", "DIGEST", "AGE")
SHORT_DIGEST_HEX: Final = 12


def format_age(created: str | None, now: datetime) -> str:
    """kubectl-style age: 45s, 12m, 5h, 3d, 2y."""
    if not created:
        return "<unknown>"
    started = datetime.fromisoformat(created.replace("Z", "+00:00"))
    seconds = max(0, int((now - started).total_seconds()))
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size or (unit == "m" and seconds >= size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short_digest(digest: str | None) -> str:
    if not digest:
        return "-"
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}:{hexdigest[:SHORT_DIGEST_HEX]}"


def effective_digest(obj: Mapping[str, Any]) -> str | None:
    """The verified digest when the operator has one, else the declared one."""
    verified = (obj.get("status") or {}).get("artifact") or {}
    declared = (obj.get("spec") or {}).get("artifact") or {}
    return verified.get("digest") or declared.get("digest")


def version_key(version: str) -> tuple[Any, ...]:
    # "10" sorts after "9": compare digit runs as numbers, the rest as text.
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", version) if part)  # fmt: skip


def sort_models(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(obj: Mapping[str, Any]) -> tuple[Any, ...]:
        spec = obj.get("spec") or {}
        return (str(spec.get("modelName", "")), version_key(str(spec.get("version", ""))))

    return sorted(items, key=key)


def table_rows(items: Iterable[Mapping[str, Any]], now: datetime) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for obj in sort_models(items):
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        rows.append((
            str(meta.get("name", "")),
            str(spec.get("modelName", "")),
            str(spec.get("version", "")),
            str(spec.get("framework", "")),
            str((obj.get("status") or {}).get("phase") or "-"),
            short_digest(effective_digest(obj)),
            format_age(meta.get("creationTimestamp"), now),
        ))  # fmt: skip
    return rows


def render_table(items: Iterable[Mapping[str, Any]], now: datetime) -> str:
    """Aligned columns like kubectl; an empty result says so instead of printing a header."""
    rows = table_rows(items, now)
    if not rows:
        return "No models found."
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [COLUMNS, *rows]]  # fmt: skip
    return "\n".join(lines)


def dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    return yaml.safe_dump(data, sort_keys=False).rstrip("\n")


def without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Like kubectl, hide metadata.managedFields (noise for humans, kept on the server)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def as_list(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def render_details(obj: Mapping[str, Any], now: datetime | None = None) -> str:
    """`mlkube model show`: identity, artifact (declared vs verified), lineage, usage."""
    now = now or datetime.now(UTC)
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = meta.get("labels") or {}
    internal = (LABEL_MODEL, LABEL_VERSION, LABEL_ARCHIVED, LABEL_PIPELINE_RUN)
    tags = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in internal)
    lines = [
        f"Name:         {meta.get('name', '')}",
        f"Namespace:    {meta.get('namespace', '')}",
        f"Model:        {spec.get('modelName', '')}",
        f"Version:      {spec.get('version', '')}",
        f"Framework:    {spec.get('framework', '')}",
        f"Phase:        {status.get('phase') or '-'}"
        + (f" ({status['message']})" if status.get("message") else ""),
        f"Archived:     {'yes' if labels.get(LABEL_ARCHIVED) == 'true' else 'no'}",
        f"Tags:         {tags or '-'}",
        f"Created:      {meta.get('creationTimestamp', '-')}"
        f" ({format_age(meta.get('creationTimestamp'), now)} ago)",
    ]
    if status.get("createdBy"):
        lines.append(f"Created by:   {status['createdBy']}")
    notes = meta.get("annotations") or {}
    run = (spec.get("lineage") or {}).get("run") or {}
    if notes.get(ANNOTATION_STEP) and run.get("system") == "mlkube":
        lines.append(f"Registered by: PipelineRun {run.get('id')}"
                     f" (step {notes[ANNOTATION_STEP]}); "
                     f"`mlkube model lineage {meta.get('name', '')}` walks it")  # fmt: skip
    if spec.get("description"):
        lines.append(f"Description:  {spec['description']}")
    if spec.get("entrypoint"):
        entry = spec["entrypoint"]
        lines.append(f"Entrypoint:   {entry.get('path')} "
                     f"(init={entry.get('initFunction', 'init')}, "
                     f"run={entry.get('runFunction', 'run')})")  # fmt: skip
    lines += _artifact_lines(spec.get("artifact") or {}, status.get("artifact") or {})
    lineage = spec.get("lineage")
    if lineage:
        lines.append("Lineage:")
        lines += _nested_lines(lineage, indent=2)
    if spec.get("properties"):
        lines.append("Properties:")
        lines += _nested_lines(spec["properties"], indent=2)
    users = status.get("deployedBy") or []
    refs = ", ".join(f"{ref.get('kind', '')}/{ref.get('name', '')}" for ref in users)
    lines.append(f"Deployed by:  {refs or '-'}")
    lines += environment_lines(status.get("environments") or [])
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        for cond in conditions:
            lines.append(f"  {cond.get('type')}={cond.get('status')} {cond.get('reason', '')}"
                         + (f": {cond['message']}" if cond.get("message") else ""))  # fmt: skip
    return "\n".join(lines)


def environment_lines(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """`environment lgbm:1 sha256:… (OnlineEndpoint shop/blue)`: the image digest each endpoint
    deployment serves the Model with (status.environments, docs/environments.md §4)."""
    lines = []
    for e in entries:
        _, _, digest = str(e.get("image", "")).partition("@")
        lines.append(f"  environment {e.get('name')}:{e.get('version')} {digest or e.get('image')}"
                     f" ({e.get('kind')} {e.get('endpoint')}/{e.get('deployment')})")  # fmt: skip
    return ["Environments:", *lines] if lines else []


def _artifact_lines(declared: Mapping[str, Any], verified: Mapping[str, Any]) -> list[str]:
    lines = [
        "Artifact:",
        f"  URI:        {declared.get('uri', '-')}",
        f"  Digest:     {declared.get('digest') or '-'} (declared)",
    ]
    if not verified.get("digest"):
        return [*lines, "  Verified:   not yet"]
    same = not declared.get("digest") or declared.get("digest") == verified["digest"]
    verdict = "matches" if same else "MISMATCH with declared"
    lines.append(f"  Verified:   {verified['digest']} ({verdict})")
    if verified.get("size") is not None:
        lines.append(f"  Size:       {format_bytes(int(verified['size']))}")
    if verified.get("fileCount") is not None:
        lines.append(f"  Files:      {verified['fileCount']}")
    if verified.get("verifiedAt"):
        lines.append(f"  Checked at: {verified['verifiedAt']}")
    return lines


def _nested_lines(value: Any, indent: int) -> list[str]:
    """A small YAML-like rendering for lineage and properties (any nesting)."""
    pad = " " * indent
    if isinstance(value, Mapping):
        out = []
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                out.append(f"{pad}{key}:")
                out += _nested_lines(item, indent + 2)
            elif not isinstance(item, Mapping | list):
                out.append(f"{pad}{key}: {item}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, Mapping):
                out.append(f"{pad}- " + ", ".join(f"{k}={v}" for k, v in item.items()))
            else:
                out.append(f"{pad}- {item}")
        return out
    return [f"{pad}{value}"]
