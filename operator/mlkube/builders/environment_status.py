"""The Environment's status (docs/environments.md §1), built without I/O.

One function for every phase so the conditions always agree with it: `Ready` (True only in
phase Ready), `Built` (build environments: Unknown while building, False with the failure's
reason), `Resolved` (the image tag or the base resolved to a digest), and kstatus's
`Reconciling`/`Stalled` (working while Pending/Resolving/Building, stalled when Failed: only a
human fixes a failed build, a missing registry or a duplicate). Facts (image, digest, base,
buildKey, build, packages, ...) are merged over the previous status, so a pass that learns
one fact keeps the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mlkube.api.common import MAX_SHORT_TEXT, bound_message
from mlkube.api.environment_status import MAX_PACKAGES, EnvironmentStatus
from mlkube.reconcile.conditions import set_condition
from mlkube.reconcile.kstatus import kstatus_conditions

PENDING: Final = "Pending"
RESOLVING: Final = "Resolving"
BUILDING: Final = "Building"
READY: Final = "Ready"
FAILED: Final = "Failed"
PHASES: Final = (PENDING, RESOLVING, BUILDING, READY, FAILED)
# Facts that describe one build's outcome: dropped when a new generation starts over.
OUTCOME_FACTS: Final = (
    "image", "imageDigest", "resolvedFrom", "sizeBytes", "packages", "python", "serving",
    "packagedModel", "build",
)  # fmt: skip


def environment_status(
    previous: Mapping[str, Any] | None,
    *,
    generation: int,
    phase: str,
    reason: str,
    message: str,
    now: str,
    facts: Mapping[str, Any] | None = None,
    resolved: bool | None = None,
    built: bool | None = None,
    building: bool = False,
    stalled: bool = False,
) -> dict[str, Any]:
    """The status after a pass: `phase` with its conditions, `facts` merged over `previous`.

    `resolved`/`built`: the Resolved/Built conditions (None: leave as they are, or Unknown when
    `building` is set for Built). The reason/message of Ready carry the phase's explanation.
    `stalled`: a phase that is not Failed still needs a human (kstatus Stalled): NoRegistry and
    Duplicate stay Pending, so a pass after the fix (operator restart, twin deleted) builds;
    an image that is not found stays Resolving while retried.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}")
    previous = dict(previous or {})
    message = bound_message(message)
    conditions = previous.get("conditions") or []
    if previous.get("observedGeneration") not in (None, generation):
        conditions = [c for c in conditions if c.get("type") not in ("Built", "Resolved")]
        for key in OUTCOME_FACTS:
            previous.pop(key, None)
    conditions = set_condition(
        conditions,
        type_="Ready",
        status=phase == READY,
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
    if resolved is not None:
        conditions = set_condition(
            conditions, type_="Resolved", status=resolved,
            reason="Resolved" if resolved else reason,
            message="image references resolved to digests" if resolved else message,
            generation=generation, now=now,
        )  # fmt: skip
    if built is not None or building:
        conditions = set_condition(
            conditions, type_="Built", status=None if building else built,
            reason=reason, message=message, generation=generation, now=now,
        )  # fmt: skip
    state = {READY: "done", FAILED: "stalled"}.get(phase, "stalled" if stalled else "working")
    conditions = kstatus_conditions(
        conditions, state=state, reason=reason, message=message, generation=generation, now=now
    )
    status = {**previous, **(facts or {})}
    if status.get("packages"):
        status["packages"] = bounded_packages(status["packages"])
    status.update(
        phase=phase, observedGeneration=generation, message=message, conditions=conditions
    )
    # Validated as the API's model: a status the CRD would refuse fails here, in a unit test.
    return EnvironmentStatus.model_validate(
        {k: v for k, v in status.items() if v is not None}
    ).to_status()


def bounded_packages(packages: list[str]) -> list[str]:
    """The pip freeze list as the CRD takes it (at most MAX_PACKAGES lines of at most
    MAX_SHORT_TEXT characters): a `name @ <long URL>` line or a huge image must not make the
    status patch fail, which would leave the Environment Building for ever."""
    lines = [p if len(p) <= MAX_SHORT_TEXT else p[: MAX_SHORT_TEXT - 1] + "…" for p in packages]
    return lines[:MAX_PACKAGES]


def no_registry_message() -> str:
    """How to configure the registry builds push to (§2.3)."""
    return (
        "no registry to push built images to: set the operator's MLKUBE_BUILD_REGISTRY "
        "(chart value build.registry, host[:port]/prefix, e.g. registry.example/mlkube; "
        "build.registryInsecure for plain HTTP, build.pushSecret for a "
        "kubernetes.io/dockerconfigjson Secret in the build namespace), or use spec.image "
        "with an image you built yourself"
    )


def duplicate_message(name: str, version: str, holder: str) -> str:
    return (
        f"environment {name}:{version} is already defined by Environment {holder} in this "
        f"namespace; references to {name}:{version} use that one: delete this object, or "
        "create it with a new spec.version"
    )
