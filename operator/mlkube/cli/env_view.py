"""Pure rendering of Environments for `mlkube env list` and `mlkube env show`.

Takes plain dicts (as the API returns them) and a `now`, so output is testable to the byte.
The status fields are the ones of docs/environments.md §1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from mlkube.api.environment import version_key
from mlkube.cli.env_object import reference
from mlkube.cli.model_view import format_age, short_digest
from mlkube.cli.progress import format_bytes
from mlkube.contract import LABEL_ARCHIVED

COLUMNS: Final = ("NAME", "VERSION", "PHASE", "SOURCE", "DIGEST", "SIZE", "AGE")
CURATED_COLUMNS: Final = ("NAME", "VERSION", "FRAMEWORKS", "IMAGE")
MAX_SOURCE: Final = 40


def sort_environments(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(obj: Mapping[str, Any]) -> tuple[Any, ...]:
        spec = obj.get("spec") or {}
        return (str(spec.get("environmentName", "")), version_key(str(spec.get("version", ""))))

    return sorted(items, key=key)


def source(spec: Mapping[str, Any]) -> str:
    """One short phrase for where the image comes from: the image, or base + what is added."""
    if spec.get("image"):
        text = f"image {spec['image']}"
    else:
        build = spec.get("build") or {}
        added = [f"{len(build[k])} {k}" for k in ("pip", "apt", "files") if build.get(k)]
        if build.get("conda"):
            added.insert(0, "conda")
        if spec.get("model"):
            added.append(f"model {spec['model']}")
        text = str(build.get("base") or "-") + (" + " + ", ".join(added) if added else "")
    return text if len(text) <= MAX_SOURCE else text[: MAX_SOURCE - 1] + "…"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in [header, *rows])  # fmt: skip


def render_table(items: Iterable[Mapping[str, Any]], now: datetime,
                 namespaces: bool = False) -> str:  # fmt: skip
    rows = []
    for obj in sort_environments(items):
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        status = obj.get("status") or {}
        size = status.get("sizeBytes")
        row = [str(spec.get("environmentName", "")), str(spec.get("version", "")),
               str(status.get("phase") or "Pending"), source(spec),
               short_digest(status.get("imageDigest")),
               format_bytes(int(size)) if size is not None else "-",
               format_age(meta.get("creationTimestamp"), now)]  # fmt: skip
        rows.append([str(meta.get("namespace", "")), *row] if namespaces else row)
    if not rows:
        return "No environments found."
    return table(["NAMESPACE", *COLUMNS] if namespaces else COLUMNS, rows)


def render_curated(entries: Iterable[Mapping[str, Any]]) -> str:
    rows = [(str(e.get("name")), str(e.get("version")), ",".join(e.get("frameworks") or ()),
             str(e.get("image") or "-")) for e in entries]  # fmt: skip
    return table(CURATED_COLUMNS, rows) if rows else "No curated environments."


def ready_message(status: Mapping[str, Any]) -> str:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") != "True" and cond.get("message"):
            return f"{cond.get('reason', '')}: {cond['message']}"
    return str(status.get("message") or "")


def render_details(obj: Mapping[str, Any], now: datetime) -> str:
    """`mlkube env show`: identity, inputs, image, build, packages, users, conditions."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    archived = (meta.get("labels") or {}).get(LABEL_ARCHIVED) == "true"
    why = ready_message(status)
    lines = [
        f"Environment:  {reference(obj)}",
        f"Object:       {meta.get('namespace', '')}/{meta.get('name', '')}",
        f"Phase:        {status.get('phase') or 'Pending'}" + (f" ({why})" if why else ""),
        f"Archived:     {'yes' if archived else 'no'}",
        f"Created:      {meta.get('creationTimestamp', '-')}"
        f" ({format_age(meta.get('creationTimestamp'), now)} ago)",
    ]
    if spec.get("description"):
        lines.append(f"Description:  {spec['description']}")
    lines += _input_lines(spec)
    lines.append(f"Image:        {status.get('image') or '-'}")
    lines.append(f"Digest:       {status.get('imageDigest') or '-'}")
    if status.get("resolvedFrom"):
        lines.append(f"Resolved from: {status['resolvedFrom']}")
    base = status.get("base") or {}
    if base.get("image"):
        lines.append(f"Base image:   {base['image']}")
    if status.get("sizeBytes") is not None:
        lines.append(f"Size:         {format_bytes(int(status['sizeBytes']))} (compressed layers)")
    lines.append(f"Python:       {status.get('python') or '-'}")
    lines += _serving_lines(status.get("serving") or {})
    packaged = status.get("packagedModel") or {}
    if packaged:
        lines.append(f"Packaged model: {packaged.get('name')} {packaged.get('artifactDigest')}")
    lines += _build_lines(status)
    packages = status.get("packages") or []
    lines.append(f"Packages:     {len(packages)}" + ("" if packages else " (known once built)"))
    lines += [f"  {p}" for p in packages]
    users = status.get("usedBy") or []
    lines.append("Used by:      " + (", ".join(_user(u) for u in users) or "-"))
    conditions = status.get("conditions") or []
    if conditions:
        lines.append("Conditions:")
        lines += [f"  {c.get('type')}={c.get('status')} {c.get('reason', '')}"
                  + (f": {c['message']}" if c.get("message") else "")
                  for c in conditions]  # fmt: skip
    return "\n".join(lines)


def _input_lines(spec: Mapping[str, Any]) -> list[str]:
    if spec.get("image"):
        return [f"Source:       image {spec['image']}"]
    build = spec.get("build") or {}
    lines = [f"Base:         {build.get('base', '-')}"]
    if build.get("pip"):
        lines.append("Pip:          " + ", ".join(build["pip"]))
    if build.get("conda"):
        lines.append("Conda:        " + " | ".join(str(build["conda"]).strip().splitlines()))
    if build.get("apt"):
        lines.append("Apt:          " + ", ".join(build["apt"]))
    for entry in build.get("files") or []:
        mode, size = int(entry.get("mode", 0o644)), len(str(entry.get("content", "")).encode())
        lines.append(f"File:         {entry.get('path')} ({mode:o}, {size} bytes)")
    for var in build.get("env") or []:
        lines.append(f"Env:          {var.get('name')}={var.get('value')}")
    if spec.get("model"):
        lines.append(f"Model:        {spec['model']} (packaged into the image)")
    return lines


def _serving_lines(serving: Mapping[str, Any]) -> list[str]:
    if not serving:
        return ["Serving:      - (checked once built)"]
    if serving.get("compatible"):
        return [f"Serving:      compatible (mlkube_serving {serving.get('version') or '?'})"]
    return [f"Serving:      NOT compatible: {serving.get('message') or 'no mlkube entrypoint'}"]


def _build_lines(status: Mapping[str, Any]) -> list[str]:
    build = status.get("build") or {}
    lines = []
    if status.get("buildKey"):
        lines.append(f"Build key:    {status['buildKey']}")
    if build:
        how = "reused an identical build" if build.get("reused") else "built"
        took = build.get("durationSeconds")
        lines.append(f"Build:        {build.get('job') or '-'} ({how}"
                     + (f", {took:g}s" if took is not None and not build.get("reused") else "")
                     + ")")  # fmt: skip
        if build.get("logs"):
            lines.append(f"Logs:         {build['logs']}")
    return lines


def _user(ref: Mapping[str, Any]) -> str:
    text = f"{ref.get('kind', '')}/{ref.get('name', '')}"
    part = ref.get("deployment") or (f"step {ref['step']}" if ref.get("step") else None)
    return text + (f" ({part})" if part else "")
