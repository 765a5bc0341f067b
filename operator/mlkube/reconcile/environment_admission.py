"""Pure admission decisions for Environments (docs/environments.md §1): which objects use an
Environment (the DELETE guard) and which new references name an archived one.

Users are computed from the specs of the endpoints, batch endpoints and pipelines, not from
the Environment's status.usedBy (which may lag). A reference means what the operator resolves
it to: `name:version` the oldest live object claiming that pair (a younger duplicate is never
used, so it may go), `name@latest` the highest version (api/environment.version_key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlkube.api.environment import parse_reference, version_key
from mlkube.contract import CURATED_ENVIRONMENT_PREFIX, LABEL_ARCHIVED

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Reference:
    """One `environment:` field of a user object."""

    ref: str
    kind: str
    name: str
    field: str  # "deployment" or "step"
    item: str  # the deployment's or step's name

    @property
    def part(self) -> str:
        return f"{self.field} {self.item}"  # "deployment blue" or "step train"


def references(kind: str, obj: Obj) -> list[Reference]:
    """Every environment reference in an endpoint's deployments or a pipeline's steps."""
    spec = obj.get("spec") or {}
    name = str((obj.get("metadata") or {}).get("name", ""))
    found = []
    for field, label in (("deployments", "deployment"), ("steps", "step")):
        for item in spec.get(field) or []:
            ref = item.get("environment") if isinstance(item, Mapping) else None
            if isinstance(ref, str) and ref:
                found.append(Reference(ref, kind, name, label, str(item.get("name", "?"))))
    return found


def _identity(env: Obj) -> tuple[str, str]:
    spec = env.get("spec") or {}
    return str(spec.get("environmentName", "")), str(spec.get("version", ""))


def _live(environments: Iterable[Obj]) -> list[Obj]:
    return [e for e in environments if not (e.get("metadata") or {}).get("deletionTimestamp")]


def _age(env: Obj) -> tuple[str, str]:
    meta = env.get("metadata") or {}
    return str(meta.get("creationTimestamp", "")), str(meta.get("name", ""))


def resolves_to(ref: str, environments: Iterable[Obj]) -> Obj | None:
    """The Environment object a reference means now (None: none, or a curated one)."""
    name, version = parse_reference(ref)
    if name.startswith(CURATED_ENVIRONMENT_PREFIX):
        return None
    mine = [e for e in _live(environments) if _identity(e)[0] == name]
    if version is None and mine:
        top = max(version_key(_identity(e)[1]) for e in mine)
        mine = [e for e in mine if version_key(_identity(e)[1]) == top]
    elif version is not None:
        mine = [e for e in mine if _identity(e)[1] == version]
    return min(mine, key=_age) if mine else None


def users_of(environment: Obj, environments: Iterable[Obj], refs: Iterable[Reference]) -> list[str]:
    """`Kind name (deployment d)` for each reference that resolves to `environment`, sorted;
    `environments` is the namespace's list."""
    uid = (environment.get("metadata") or {}).get("uid")
    me = _age(environment)
    envs = list(environments)
    if not any(_same(e, uid, me) for e in envs):  # a list that lags behind still counts it
        envs.append(environment)
    users = set()
    for r in refs:
        found = resolves_to(r.ref, envs)
        if found is not None and _same(found, uid, me):
            users.add(f"{r.kind} {r.name} ({r.part})")
    return sorted(users)


def _same(env: Obj, uid: Any, age: tuple[str, str]) -> bool:
    theirs = (env.get("metadata") or {}).get("uid")
    return theirs == uid if uid and theirs else _age(env) == age


def new_references(kind: str, new: Obj, old: Obj | None) -> list[Reference]:
    """References `new` makes that `old` did not (any deployment or step), pinned ones only:
    `name@latest` names no version, so there is nothing archived to refuse."""
    before = {r.ref for r in references(kind, old)} if old else set()
    return [
        r
        for r in references(kind, new)
        if r.ref not in before and parse_reference(r.ref)[1] is not None
    ]


def archived_message(refs: Iterable[Reference], environments: Iterable[Obj]) -> str | None:
    """Why the write is refused (new references to archived Environments), or None."""
    envs = list(environments)
    refused = []
    for r in refs:
        found = resolves_to(r.ref, envs)
        labels = (found or {}).get("metadata", {}).get("labels") or {}
        if found is not None and labels.get(LABEL_ARCHIVED) == "true":
            refused.append(f"{r.ref} ({r.part})")
    if not refused:
        return None
    return (
        f"Environment {', '.join(sorted(set(refused)))} is archived (label {LABEL_ARCHIVED}=true):"
        " new references to an archived environment are refused (existing users keep it);"
        " use another version, or remove the label to unarchive it"
    )
