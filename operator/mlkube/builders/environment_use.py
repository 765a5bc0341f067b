"""Running a deployment, batch scorer or pipeline step on an Environment's image (note §4/§5).

A reference `name:version` (or `name@latest`) resolves to the Environment's `status.image`,
which is always pinned by digest, so every pod of a deployment runs the same bytes however
often the Environment's tags move. A curated reference (`mlkube-sklearn:0.1.0`) resolves from
the operator's catalogue instead of an object. The user waits (EnvironmentNotReady) while an
environment builds and is refused (EnvironmentIncompatible) when its image lacks the serving
entrypoint: starting pods that can only crash would hide the real cause behind CrashLoopBackOff.

Pure: Environment objects and the catalogue come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlkube import contract as c
from mlkube.api.common import bound_message
from mlkube.api.environment import parse_reference as api_parse_reference
from mlkube.api.environment import version_key
from mlkube.environments.curated import VERSION as CURATED_VERSION
from mlkube.environments.curated import CuratedError, is_curated, resolve_curated

NOT_READY: Final = "EnvironmentNotReady"
INCOMPATIBLE: Final = "EnvironmentIncompatible"
# A curated reference this operator does not offer: only a spec change fixes it.
NOT_FOUND: Final = "EnvironmentNotFound"
LATEST: Final = "latest"
# Where a packaged model sits inside its image (the build's fetch-model step writes it there).
PACKAGED_MODEL_DIR: Final = "/opt/mlkube/model"
CURATED_HINT: Final = f"mlkube-sklearn:{CURATED_VERSION}"


@dataclass(frozen=True)
class EnvironmentUse:
    """A resolved reference: what the pod runs and what status and lineage record."""

    reference: str  # as written in the spec
    name: str
    version: str
    image: str  # pinned by digest
    packaged_model: str | None = None  # Model object name baked into the image
    packaged_digest: str | None = None  # its artifact digest

    def record(self) -> dict[str, str]:
        """`environment: {name, version, image}` of a status or lineage entry."""
        return {"name": self.name, "version": self.version, "image": self.image}

    def packages(self, model: str, digest: str) -> bool:
        """The image already holds this Model's verified artifact (no download at start)."""
        return self.packaged_model == model and self.packaged_digest == digest


@dataclass(frozen=True)
class EnvironmentProblem:
    """Why a reference cannot be used yet (NotReady: wait) or at all (Incompatible)."""

    reference: str
    reason: str
    message: str

    @property
    def degraded(self) -> bool:
        return self.reason in (INCOMPATIBLE, NOT_FOUND)


def parse_reference(reference: str) -> tuple[str, str]:
    """(name, version) of `name:version`; `name@latest` and a bare name give version "latest"
    (the API's parser, with `latest` spelled out)."""
    name, version = api_parse_reference(reference)
    return name, version or LATEST


def is_ready(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    ready = any(
        cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in status.get("conditions") or []
    )
    return ready and bool(status.get("image")) and "@sha256:" in str(status.get("image"))


def _spec_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    spec = obj.get("spec") or {}
    return str(spec.get("environmentName", "")), str(spec.get("version", ""))


def candidates(
    name: str, version: str, environments: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The live Environments a reference may mean (all versions of `name` for latest)."""
    live = [e for e in environments if not (e.get("metadata") or {}).get("deletionTimestamp")]
    mine = [e for e in live if _spec_key(e)[0] == name]
    if version != LATEST:
        return [e for e in mine if _spec_key(e)[1] == version]
    if not mine:
        return []
    top = max(version_key(_spec_key(e)[1]) for e in mine)
    return [e for e in mine if version_key(_spec_key(e)[1]) == top]


def incompatible_message(name: str, version: str, image: str, detail: str) -> str:
    return (
        f"environment {name}:{version} (image {image}) does not provide the mlkube serving "
        f"entrypoint (`python -m mlkube_serving`): {detail or 'the probe found no mlkube_serving'}"
        f"; build it from a curated base (build.base: {CURATED_HINT}) or install "
        "mlkube[serving] into the image"
    )


def resolve_environment(
    reference: str,
    environments: Iterable[Mapping[str, Any]],
    curated: Mapping[str, str] | None = None,
    *,
    serving: bool = True,
    serving_image: str = "",
) -> EnvironmentUse | EnvironmentProblem:
    """The image of `reference` among the namespace's Environments, or of a curated one (its
    configured image in `curated`, else derived from `serving_image`: environments/curated.py).

    `serving`: the pod runs mlkube's entrypoints (model server, batch scorer), so the serving
    contract must hold; pipeline steps run the user's command and need only the image.
    """
    name, version = parse_reference(reference)
    if is_curated(name):
        return _curated(reference, serving_image, curated or {})
    found = candidates(name, version, environments)
    shown = f"{name}:{version}" if version != LATEST else f"{name}@latest"
    if not found:
        return EnvironmentProblem(reference, NOT_READY, f"Environment {shown} does not exist")
    ready = sorted(
        (e for e in found if is_ready(e)),
        key=lambda e: str((e.get("metadata") or {}).get("creationTimestamp", "")),
    )
    if not ready:
        status = found[0].get("status") or {}
        phase = status.get("phase") or "Pending"
        detail = f": {status['message']}" if status.get("message") else ""
        return EnvironmentProblem(
            reference,
            NOT_READY,
            bound_message(f"Environment {shown} is not Ready ({phase}){detail}"),
        )
    obj = ready[0]
    status = obj.get("status") or {}
    env_name, env_version = _spec_key(obj)
    image = str(status["image"])
    compat = status.get("serving") or {}
    if serving and compat.get("compatible") is False:
        text = incompatible_message(env_name, env_version, image, str(compat.get("message") or ""))
        return EnvironmentProblem(reference, INCOMPATIBLE, bound_message(text))
    packaged = status.get("packagedModel") or {}
    return EnvironmentUse(
        reference=reference,
        name=env_name,
        version=env_version,
        image=image,
        packaged_model=str(packaged["name"]) if packaged.get("name") else None,
        packaged_digest=str(packaged["artifactDigest"]) if packaged.get("artifactDigest") else None,
    )


def _curated(
    reference: str, serving_image: str, configured: Mapping[str, str]
) -> EnvironmentUse | EnvironmentProblem:
    """A curated environment (its images carry the serving entrypoint by construction: they
    are the serving image's variants, versioned with mlkube)."""
    try:
        found = resolve_curated(reference, serving_image, configured)
    except CuratedError as err:
        return EnvironmentProblem(reference, NOT_FOUND, bound_message(str(err)))
    assert found.image is not None  # resolve_curated raises otherwise
    return EnvironmentUse(
        reference=reference, name=found.environment.name, version=found.version, image=found.image
    )


def resolve_all(
    references: Iterable[str],
    environments: Iterable[Mapping[str, Any]],
    curated: Mapping[str, str] | None = None,
    *,
    serving: bool = True,
    serving_image: str = "",
) -> tuple[dict[str, EnvironmentUse], list[EnvironmentProblem]]:
    """Each distinct reference resolved once: (reference -> use, problems)."""
    envs = list(environments)
    uses: dict[str, EnvironmentUse] = {}
    problems: list[EnvironmentProblem] = []
    for ref in sorted(set(references)):
        found = resolve_environment(
            ref, envs, curated, serving=serving, serving_image=serving_image
        )
        if isinstance(found, EnvironmentProblem):
            problems.append(found)
        else:
            uses[ref] = found
    return uses, problems


def add_pull_secret(pod_spec: dict[str, Any], secret: str | None) -> None:
    """`imagePullSecrets` for the environment's registry (MLKUBE_IMAGE_PULL_SECRET)."""
    if not secret:
        return
    secrets = pod_spec.setdefault("imagePullSecrets", [])
    if {"name": secret} not in secrets:
        secrets.append({"name": secret})


def drop_unused_volumes(pod_spec: dict[str, Any]) -> None:
    """Remove volumes no container mounts any more (the model volume of a packaged model)."""
    containers = [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]
    mounted = {m["name"] for one in containers for m in one.get("volumeMounts") or []}
    pod_spec["volumes"] = [v for v in pod_spec.get("volumes") or [] if v["name"] in mounted]


def set_env(container: dict[str, Any], name: str, value: str) -> None:
    env = [e for e in container.get("env") or [] if e.get("name") != name]
    container["env"] = [*env, {"name": name, "value": value}]


def apply_environment(
    pod_spec: dict[str, Any],
    use: EnvironmentUse,
    *,
    containers: Iterable[str],
    pull_secret: str | None,
    packaged: bool = False,
    model_volume: str = "model",
    initializer: str = "storage-initializer",
) -> None:
    """Run `containers` on the environment's image; `packaged`: the image holds the model, so
    the storage initializer and the model volume go and `MLKUBE_MODEL_DIR` names the baked-in
    directory. mlkube's own helpers (initializers, drift sidecar, step agents) keep the serving
    image: they need no user dependencies."""
    names = set(containers)
    for container in pod_spec.get("containers") or []:
        if container["name"] not in names:
            continue
        container["image"] = use.image
        # Pinned by digest: a pull is needed only once per node, whatever the policy says.
        container["imagePullPolicy"] = "IfNotPresent"
        if packaged:
            mounts = container.get("volumeMounts") or []
            container["volumeMounts"] = [m for m in mounts if m["name"] != model_volume]
            set_env(container, c.ENV_MODEL_DIR, PACKAGED_MODEL_DIR)
    if packaged:
        inits = [i for i in pod_spec.get("initContainers") or [] if i["name"] != initializer]
        if inits:
            pod_spec["initContainers"] = inits
        else:
            pod_spec.pop("initContainers", None)
        drop_unused_volumes(pod_spec)
    add_pull_secret(pod_spec, pull_secret)
