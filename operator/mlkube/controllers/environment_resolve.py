"""Pinning image references for the Environment controller (docs/environments.md §1, §3).

A tag becomes a digest with a manifest HEAD (`Registry.digest`); a curated base
(`mlkube-…:version`) is first looked up in the operator's catalogue; a packaged Model must be
verified, its artifact digest being a build input. What cannot be pinned raises `Unresolved`,
which says whether asking again later may help (the controller retries with backoff).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.builders.environment_build_spec import PackagedModel
from mlkube.contract import API_VERSION, KIND_MODEL
from mlkube.controllers.environment_ports import Deps, RegistryError
from mlkube.controllers.kube import Kube
from mlkube.environments.curated import CuratedError, is_curated, resolve_curated

RETRY_REASON: Final = "RegistryUnavailable"


class Unresolved(Exception):
    """An image reference could not be pinned: `retry` when the registry may answer later."""

    def __init__(self, reason: str, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.reason, self.retry = reason, retry


def pin(deps: Deps, reference: str) -> str:
    """`reference` pinned by digest (`repo@sha256:…`), asking the registry for a tag."""
    if "@sha256:" in reference:
        return reference
    try:
        digest = deps.registry.digest(reference)
    except RegistryError as err:
        reason = "InvalidImageReference" if err.permanent else RETRY_REASON
        raise Unresolved(reason, f"cannot resolve {reference}: {err}",
                         retry=not err.permanent) from err  # fmt: skip
    if digest is None:
        raise Unresolved(
            "ImageNotFound", f"cannot resolve {reference}: the registry has no such image "
            "(tag or repository); push it, or correct the reference", retry=True,
        )  # fmt: skip
    return f"{repository_of(reference)}@{digest}"


def repository_of(reference: str) -> str:
    """`host/repo:tag` or `host/repo@sha256:…` -> `host/repo` (a port's colon is kept)."""
    ref = reference.split("@", 1)[0]
    head, _, tail = ref.rpartition("/")
    name = tail.split(":", 1)[0]
    return f"{head}/{name}" if head else name


def resolve_base(deps: Deps, base: str) -> str:
    """The base as an image pinned by digest: a curated environment (`mlkube-…:version`,
    from the operator's catalogue), else an image reference."""
    if is_curated(base) and "/" not in base:
        try:
            configured = dict(deps.config.build.curated)
            found = resolve_curated(base, deps.config.serving_image, configured)
        except CuratedError as err:
            raise Unresolved("UnknownCuratedEnvironment", str(err), retry=False) from err
        return pin(deps, str(found.image))
    return pin(deps, base)


def packaged_model(kube: Kube, obj: Mapping[str, Any]) -> PackagedModel | None:
    """The Model `spec.model` names (§5), once verified: its artifact digest is an input."""
    name = (obj.get("spec") or {}).get("model")
    if not name:
        return None
    model = kube.get(API_VERSION, KIND_MODEL, str(name), str(obj["metadata"]["namespace"]))
    spec, status = (model or {}).get("spec") or {}, (model or {}).get("status") or {}
    digest = (status.get("artifact") or {}).get("digest")
    if model is None or status.get("phase") != "Ready" or not digest:
        state = "does not exist" if model is None else "is not verified (Ready) yet"
        raise Unresolved("ModelNotReady", f"Model {name} {state}", retry=True)
    uri = str((spec.get("artifact") or {}).get("uri", ""))
    # The Model object's name (§1 status.packagedModel.name): deployments match it against
    # their `model`, so a deployment of this Model runs without the storage initializer.
    version = str(spec.get("version", ""))
    return PackagedModel(name=str(name), version=version, uri=uri, digest=str(digest))
