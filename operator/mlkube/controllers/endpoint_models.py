"""An endpoint's Models: read their verified facts, keep their `status.deployedBy` current.

Both endpoint kinds, OnlineEndpoint and BatchEndpoint, list themselves there by kind: the same
references, the same repair, the same delete guard (handlers/webhooks.py), so a Model that a
batch deployment scores with is as safe from deletion as one that serves online.

`deployedBy` is written with the Model's resourceVersion as a precondition and retried on
409, so two endpoints adding themselves at once never lose one another's reference.

An endpoint's deletion needs no finalizer: `repair_deployed_by` recomputes the references from
a live LIST of endpoints (on an endpoint's DELETED event, and on the Model's side at operator
start and periodically), so an endpoint deleted while the operator was away leaves nothing
stale once it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from mlkube.builders.endpoint_status import Blocker
from mlkube.builders.model_facts import ModelFacts, ModelProblem, read_model
from mlkube.contract import API_VERSION, KIND_BATCH_ENDPOINT, KIND_MODEL, KIND_ONLINE_ENDPOINT
from mlkube.controllers.endpoint_users import USERS, UsersIndex, ordered, used_models
from mlkube.controllers.errors import EndpointSyncError
from mlkube.controllers.fresh_reads import FreshReads
from mlkube.controllers.kube import ApiError, Kube
from mlkube.controllers.model_environments import only_users
from mlkube.controllers.model_status_lists import CONFLICT_RETRIES, update_model_status_list
from mlkube.reconcile.endpoint_changes import endpoint_reference, with_reference

# The kinds whose deployments[].model name Models (and are listed in `deployedBy`).
ENDPOINT_KINDS: Final = (KIND_ONLINE_ENDPOINT, KIND_BATCH_ENDPOINT)
# One Model's check GETs each endpoint it may be used by; beyond this many, one LIST of the
# namespace's endpoints is cheaper.
GET_AT_MOST: Final = 20


def read_models(
    kube: Kube, namespace: str, names: Iterable[str]
) -> tuple[dict[str, ModelFacts], list[Blocker]]:
    models: dict[str, ModelFacts] = {}
    blockers = []
    for model in sorted(names):
        found = read_model(model, kube.get(API_VERSION, KIND_MODEL, model, namespace))
        if isinstance(found, ModelProblem):
            blockers.append(
                Blocker(found.reason, found.message, degraded=found.reason == "ModelFailed")
            )
        else:
            models[model] = found
    return models, blockers


def sync_model_references(
    kube: Kube,
    namespace: str,
    endpoint: str,
    referenced: set[str],
    kind: str = KIND_ONLINE_ENDPOINT,
    previous: Iterable[str] | None = None,
) -> None:
    """Make every Model's `status.deployedBy` list this endpoint exactly when it uses the Model.

    `previous`: the Models the endpoint used before (its status records them); then only those
    and the referenced ones are read, not a LIST of every Model in the namespace per pass (at
    1,000 endpoints in a namespace that is 1,000 Models per pass). A reference left behind
    anyway (a spec changed twice before a status was written) is removed by the Model's
    periodic `repair_deployed_by`."""
    ref = endpoint_reference(endpoint, namespace, kind)
    if previous is None:
        candidates = kube.list(API_VERSION, KIND_MODEL, namespace)
    else:
        names = sorted(referenced | set(previous))
        found = (kube.get(API_VERSION, KIND_MODEL, n, namespace) for n in names)
        candidates = [m for m in found if m is not None]
    for model in candidates:
        name = model["metadata"]["name"]
        refs = (model.get("status") or {}).get("deployedBy") or []
        if with_reference(refs, ref, name in referenced) is not None:
            update_deployed_by(kube, namespace, name, ref, name in referenced, model)


def update_deployed_by(
    kube: Kube,
    namespace: str,
    name: str,
    ref: dict[str, str],
    present: bool,
    model: dict[str, Any] | None,
) -> None:
    """Add or remove `ref`, guarded by resourceVersion so concurrent endpoints never lose one."""
    if model is None:
        return
    update_model_status_list(
        kube, namespace, name, "deployedBy", lambda refs: with_reference(refs, ref, present), model
    )


def endpoint_users(
    endpoints: Iterable[dict[str, Any]], namespace: str, kind: str = KIND_ONLINE_ENDPOINT
) -> dict[str, list[dict[str, str]]]:
    """Model name -> references of the live (not deleting) endpoints whose spec names it."""
    users: dict[str, list[dict[str, str]]] = {}
    for obj in sorted(endpoints, key=lambda o: str(o["metadata"]["name"])):
        if obj["metadata"].get("deletionTimestamp"):
            continue
        ref = endpoint_reference(str(obj["metadata"]["name"]), namespace, kind)
        models = {d.get("model") for d in (obj.get("spec") or {}).get("deployments") or []}
        for model in sorted(m for m in models if isinstance(m, str)):
            users.setdefault(model, []).append(ref)
    return users


# The namespace's endpoint users, shared by the repairs that read their Models before it started.
_USERS: Final = FreshReads[dict[str, list[dict[str, str]]]]()


def all_endpoint_users(
    kube: Kube, namespace: str, read_after: float | None = None
) -> dict[str, list[dict[str, str]]]:
    """Model name -> references of the live endpoints of every kind that use it.

    `read_after` (time.monotonic()): any LIST started after then will do, so concurrent
    repairs (every Model at operator start) share one instead of one LIST each."""
    if read_after is not None:
        key = (id(kube), namespace)
        return _USERS.read(key, read_after, lambda: all_endpoint_users(kube, namespace))
    users: dict[str, list[dict[str, str]]] = {}
    for kind in ENDPOINT_KINDS:
        found = endpoint_users(kube.list(API_VERSION, kind, namespace), namespace, kind)
        for model, refs in found.items():
            users.setdefault(model, []).extend(refs)
    return users


def repaired_references(
    refs: Iterable[dict[str, Any]], users: list[dict[str, str]]
) -> list[dict[str, Any]] | None:
    """`refs` with exactly `users` as endpoint entries (order kept); None if unchanged."""
    current = [dict(r) for r in refs]
    kept = [r for r in current if r.get("kind") not in ENDPOINT_KINDS or r in users]
    new = kept + [u for u in users if u not in kept]
    return None if new == current else new


def repair_deployed_by(
    kube: Kube,
    namespace: str,
    model: str | None = None,
    index: UsersIndex = USERS,
    read: dict[str, Any] | None = None,
) -> list[str]:
    """Make `deployedBy` of one Model (or of every Model in the namespace) list exactly the live
    endpoints that use it; returns the Models changed.

    The Models are read before the endpoints, and written with their resourceVersion: a
    reference an endpoint added after our read makes the write conflict (then the Model and
    the endpoints are read again) instead of being lost, and one added before the read comes
    from an endpoint that the later reads still see unless it is gone. One Model's check
    reads only the endpoints it names and those `index` (the watches) says use it
    (endpoint_users.py); every Model's check shares LISTs of the namespace's endpoints.
    `read`: `model` as the caller has just read it, used for the first attempt instead of a
    GET of its own (a conflict reads it again).
    """
    read_at = time.monotonic()
    models = kube.list(API_VERSION, KIND_MODEL, namespace) if model is None else []
    changed, conflicted = _repair(kube, namespace, models, _listed_users(kube, namespace, read_at))
    first = read if model is not None else None  # the later reads start after the caller's
    for name in [model] if model is not None else conflicted:
        for _ in range(CONFLICT_RETRIES):
            read_at = time.monotonic()
            one, first = first or kube.get(API_VERSION, KIND_MODEL, name, namespace), None
            users = _named_users(kube, namespace, index, read_at)
            done, again = _repair(kube, namespace, [one] if one is not None else [], users)
            changed += done
            if not again:
                break
        else:
            raise EndpointSyncError(f"Model {namespace}/{name}: deployedBy kept conflicting")
    return changed


UsersOf = Callable[[dict[str, Any]], list[dict[str, str]]]


def _listed_users(kube: Kube, namespace: str, read_at: float) -> UsersOf:
    """Users of a Model from LISTs of the namespace's endpoints made after `read_at`."""

    def users_of(obj: dict[str, Any]) -> list[dict[str, str]]:
        users = all_endpoint_users(kube, namespace, read_after=read_at)
        return users.get(str(obj["metadata"]["name"]), [])

    return users_of


def _named_users(kube: Kube, namespace: str, index: UsersIndex, read_at: float) -> UsersOf:
    """Users of a Model from GETs of the endpoints that may use it: those its status names
    and those the watches last saw naming it (a LIST when there are many)."""

    def users_of(obj: dict[str, Any]) -> list[dict[str, str]]:
        name = str(obj["metadata"]["name"])
        status = obj.get("status") or {}
        named = [(str(r.get("kind")), str(r.get("name"))) for r in status.get("deployedBy") or []]
        named += [
            (str(e.get("kind")), str(e.get("endpoint"))) for e in status.get("environments") or []
        ]
        candidates = ordered(
            [c for c in named if c[0] in ENDPOINT_KINDS] + index.users(namespace, name),
            ENDPOINT_KINDS,
        )
        if len(candidates) > GET_AT_MOST:
            return _listed_users(kube, namespace, read_at)(obj)
        return [
            endpoint_reference(endpoint, namespace, kind)
            for kind, endpoint in candidates
            if name in used_models(kube.get(API_VERSION, kind, endpoint, namespace))
        ]

    return users_of


def _repair(
    kube: Kube, namespace: str, models: list[dict[str, Any]], users_of: UsersOf
) -> tuple[list[str], list[str]]:
    """(Models written, Models that changed since they were read)."""
    changed, conflicted = [], []
    for obj in models:
        name = str(obj["metadata"]["name"])
        refs = (obj.get("status") or {}).get("deployedBy") or []
        users = users_of(obj)
        new = repaired_references(refs, users)
        # Environment entries of endpoints that no longer use the Model go with their reference.
        envs = only_users((obj.get("status") or {}).get("environments") or [], users)
        if new is None and envs is None:
            continue
        status: dict[str, Any] = {"deployedBy": refs if new is None else new}
        if envs is not None:
            status["environments"] = envs
        body = {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "status": status,
        }
        try:
            kube.patch(API_VERSION, KIND_MODEL, name, body, namespace, subresource="status")
            changed.append(name)
        except ApiError as err:
            if err.status == 409:
                conflicted.append(name)
            elif err.status != 404:
                raise
    return changed, conflicted
