"""Pure helpers of `mlkube endpoint`: traffic arguments, merge patches, manifests, rendering.

Takes and returns plain dicts (as the API returns them), so every piece is tested without a
cluster; `mlkube.cli.endpoint` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from mlkube.api.endpoint import OnlineEndpointSpec
from mlkube.cli import manifests
from mlkube.cli.endpoint_rollout_view import render_rollout
from mlkube.cli.errors import CliError
from mlkube.cli.model_view import format_age
from mlkube.reconcile.rollout_cel import ConditionError, check_condition

KIND: Final = "OnlineEndpoint"
NONE_WORDS: Final = frozenset({"", "none", "off"})


def parse_split(text: str, flag: str) -> dict[str, int]:
    """`blue=70,green=30` -> {"blue": 70, "green": 30}; `none` -> {}."""
    if text.strip().lower() in NONE_WORDS:
        return {}
    split: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not name.strip():
            raise CliError(f"{flag} expects NAME=PERCENT[,NAME=PERCENT...], got {item!r}")
        try:
            percent = int(value)
        except ValueError as exc:
            raise CliError(f"{flag} {name}: {value!r} is not an integer percent") from exc
        if not 0 <= percent <= 100:
            raise CliError(f"{flag} {name}: {percent} is not between 0 and 100")
        if name.strip() in split:
            raise CliError(f"{flag} names {name.strip()!r} twice")
        split[name.strip()] = percent
    return split


def split_patch(current: Mapping[str, int], desired: Mapping[str, int]) -> dict[str, int | None]:
    """A merge patch for a map: keys that disappear must be sent as null to be removed."""
    patch: dict[str, int | None] = {key: None for key in current if key not in desired}
    patch.update(desired)
    return patch


def format_split(split: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(split.items())) or "(none)"


def read_manifests(text: str, namespace: str) -> list[dict[str, Any]]:
    """OnlineEndpoint documents from YAML, checked locally and placed in `namespace` if unset."""
    return manifests.read_manifests(text, namespace, (KIND,), _check)


def _check(kind: str, spec: Mapping[str, Any], name: str) -> None:
    try:
        checked = OnlineEndpointSpec.model_validate(spec)
    except ValidationError as exc:
        raise CliError(f"OnlineEndpoint {name}: {_short_errors(exc)}") from exc
    # The API server cannot compile CEL held in a string; the operator would stop the rollout.
    for metric in checked.rollout.metrics if checked.rollout is not None else []:
        for condition in (metric.success_condition, metric.failure_condition):
            try:
                check_condition(condition or "true")
            except ConditionError as exc:
                where = f"OnlineEndpoint {name}: spec.rollout metric {metric.name}"
                raise CliError(f"{where}: {exc}") from exc


def _short_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


def ready_condition(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "Ready"), {})


def render_details(obj: Mapping[str, Any], now: datetime) -> str:
    """`mlkube endpoint show` in text form."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    status = obj.get("status") or {}
    ready = ready_condition(obj)
    lines = [
        f"Name:       {meta.get('name')}",
        f"Namespace:  {meta.get('namespace')}",
        f"URL:        {status.get('url') or '-'}",
        f"Ready:      {ready.get('status', 'Unknown')} ({ready.get('reason', '-')})",
        f"Auth:       {(spec.get('auth') or {}).get('mode', 'none')}",
        f"Backend:    {spec.get('trafficBackend', 'router')}",
        f"Traffic:    {format_split(spec.get('traffic') or {})}"
        f"  (applied: {format_split(status.get('traffic') or {})})",
        f"Mirror:     {format_split(spec.get('mirror') or {})}",
        f"Age:        {format_age(meta.get('creationTimestamp'), now)}",
        "Deployments:",
    ]
    observed = {d.get("name"): d for d in status.get("deployments") or []}
    for dep in spec.get("deployments") or []:
        seen = observed.get(dep.get("name"), {})
        lines.append(
            f"  {dep.get('name'):<12} model={dep.get('model')}  "
            f"ready={seen.get('readyReplicas', 0)}/{seen.get('replicas', '?')}"
        )
        env = seen.get("environment") or {}
        if env.get("image"):
            lines.append(f"    environment: {env.get('name')}:{env.get('version')} {env['image']}")
        elif dep.get("environment"):
            lines.append(f"    environment: {dep['environment']} (not resolved yet)")
        if seen.get("message"):
            lines.append(f"    pods: {seen['message']}")
        drift = seen.get("drift")
        if drift:
            lines.append(f"    drift: {format_drift(drift)}")
    if status.get("message"):
        lines.append(f"Message:    {status['message']}")
    lines += render_rollout(obj, now)
    return "\n".join(lines)


def format_drift(drift: Mapping[str, Any]) -> str:
    """One line: the verdict, how many features drifted, and the worst features."""
    verdict = "DRIFT" if drift.get("detected") else "no drift"
    text = (
        f"{verdict} ({drift.get('driftedFeatures', 0)}/{drift.get('evaluatedFeatures', 0)} "
        f"features, window {drift.get('samples', 0)}/{drift.get('windowSize', 0)}, "
        f"{drift.get('replicasReporting', 0)} replicas, {drift.get('reason', '-')})"
    )
    top = [
        f"{f.get('name')} {f.get('method')} {f.get('score') or 0:.3f}/{f.get('threshold') or 0:.3f}"
        for f in (drift.get("topFeatures") or [])[:3]
    ]
    return text + (f"; top: {', '.join(top)}" if top else "")


def render_table(items: Iterable[Mapping[str, Any]], now: datetime) -> str:
    rows = [("NAME", "READY", "TRAFFIC", "URL", "AGE")]
    for obj in sorted(items, key=lambda o: str((o.get("metadata") or {}).get("name"))):
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        rows.append(
            (
                str(meta.get("name")),
                str(ready_condition(obj).get("status", "Unknown")),
                format_split(status.get("traffic") or {}),
                str(status.get("url") or "-"),
                format_age(meta.get("creationTimestamp"), now),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )
