"""The Model a `registerModel` step creates (pure): name, version, labels, spec.

The object name is the registry's (`<modelName>-v<version>`, cli `model register`), so a
pipeline-registered version and a hand-registered one can never coexist under two names.
The Model is ownerless (a model outlives the run that trained it); the run's uid and the
step name in annotations let the same run find its own Model again after a restart, and a
label lets `kubectl get models -l mlkube.dev/pipeline-run=<run>` list what a run produced.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mlkube.api.pipeline_refs import PLACEHOLDER_PATTERN
from mlkube.builders.names import label_value
from mlkube.contract import (
    API_VERSION,
    KIND_MODEL,
    LABEL_MODEL,
    LABEL_PIPELINE_RUN,
    LABEL_VERSION,
)

ANNOTATION_RUN_UID: Final = "mlkube.dev/pipeline-run-uid"
ANNOTATION_STEP: Final = "mlkube.dev/pipeline-step"
AUTO: Final = "auto"
MAX_LABEL: Final = 63
_PLACEHOLDER: Final = re.compile(PLACEHOLDER_PATTERN)  # the one the API checks templates with


class TemplateError(ValueError):
    """A `{{...}}` placeholder that the run cannot fill."""


def model_object_name(model_name: str, version: str) -> str:
    """`<name>-v<version>` as a DNS label; long names keep a hash so they stay distinct."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{model_name}-v{version}".lower()).strip("-")
    base = re.sub(r"-{2,}", "-", base)
    if len(base) <= MAX_LABEL:
        return base
    suffix = hashlib.sha256(f"{model_name}\x00{version}".encode()).hexdigest()[:8]
    return f"{base[: MAX_LABEL - 9].rstrip('-')}-{suffix}"


def next_version(versions: Iterable[str]) -> str:
    """One more than the highest integer version (non-integer versions are ignored), or 1."""
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def render(template: str, parameters: Mapping[str, str], run_name: str, run_uid: str) -> str:
    """Fill `{{parameters.NAME}}`, `{{run.name}}`, `{{run.uid}}`; anything else is an error."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "run.name":
            return run_name
        if key == "run.uid":
            return run_uid
        group, _, name = key.partition(".")
        if group == "parameters" and name in parameters:
            return parameters[name]
        raise TemplateError(f"unknown placeholder {{{{{key}}}}}")

    return _PLACEHOLDER.sub(fill, template)


def own_model(
    models: Iterable[Mapping[str, Any]], model_name: str, run_uid: str, step: str
) -> Mapping[str, Any] | None:
    """The Model of `model_name` this run's step registered earlier, if any."""
    for obj in models:
        meta = obj.get("metadata") or {}
        notes = meta.get("annotations") or {}
        if (
            (obj.get("spec") or {}).get("modelName") == model_name
            and notes.get(ANNOTATION_RUN_UID) == run_uid
            and notes.get(ANNOTATION_STEP) == step
        ):
            return obj
    return None


@dataclass(frozen=True)
class Wanted:
    """What the step would register: a Model of `model_name` that is exactly this."""

    model_name: str
    framework: str
    artifact_digest: str | None
    baseline_digest: str | None = None


def registered_digest(obj: Mapping[str, Any]) -> str | None:
    """The Model's artifact digest: the verified one once known, else the declared one."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return (status.get("artifact") or {}).get("digest") or (spec.get("artifact") or {}).get(
        "digest"
    )


def differences(obj: Mapping[str, Any], wanted: Wanted) -> list[str]:
    """How Model `obj` differs from what the step would register (empty: the same thing)."""
    spec = obj.get("spec") or {}
    found: list[str] = []
    digest = registered_digest(obj)
    if wanted.artifact_digest is None or digest != wanted.artifact_digest:
        found.append(
            f"its artifact is {digest or 'without a digest'}, "
            f"this run's is {wanted.artifact_digest or 'without a digest'}"
        )
    if spec.get("framework") != wanted.framework:
        found.append(f"its framework is {spec.get('framework')}, the step's {wanted.framework}")
    have = (spec.get("baseline") or {}).get("digest")
    if wanted.baseline_digest is not None and have != wanted.baseline_digest:
        found.append(f"its baseline is {have or 'absent'}, this run's {wanted.baseline_digest}")
    return found


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def reusable(models: Iterable[Mapping[str, Any]], wanted: Wanted) -> Mapping[str, Any] | None:
    """The Model of `wanted.model_name` that already registers exactly this artifact (verified
    digest, framework, baseline when the step names one) and is Ready and not being deleted;
    the highest version when several do. None without an artifact digest to compare."""
    if wanted.artifact_digest is None:
        return None
    found = [
        obj
        for obj in models
        if (obj.get("spec") or {}).get("modelName") == wanted.model_name
        and (obj.get("status") or {}).get("phase") == "Ready"
        and ((obj.get("status") or {}).get("artifact") or {}).get("digest")
        == wanted.artifact_digest
        and not deleting(obj)
        and not differences(obj, wanted)
    ]
    return max(found, key=_version_order, default=None)


def _version_order(obj: Mapping[str, Any]) -> tuple[int, str]:
    version = str((obj.get("spec") or {}).get("version") or "")
    return (int(version) if version.isdigit() else -1, str(obj["metadata"]["name"]))


def source_run(obj: Mapping[str, Any]) -> str | None:
    """The PipelineRun that registered Model `obj` (its lineage run), None when not a run."""
    run = ((obj.get("spec") or {}).get("lineage") or {}).get("run") or {}
    if run.get("system") == "mlkube" and run.get("id"):
        return str(run["id"]).rpartition("/")[2]
    label = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_PIPELINE_RUN)
    return str(label) if label else None


def _entrypoint(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    return {"path": str(value)} if isinstance(value, str) else dict(value)


def build_model(
    *,
    namespace: str,
    run_name: str,
    run_uid: str,
    step: Mapping[str, Any],
    version: str,
    artifact: Mapping[str, str],
    lineage: Mapping[str, Any],
    baseline: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Model manifest for registerModel `step` at `version` (wire form)."""
    config = step.get("registerModel") or {}
    model_name = str(config["modelName"])
    spec: dict[str, Any] = {
        "modelName": model_name,
        "version": version,
        "framework": config.get("framework"),
        "artifact": dict(artifact),
        "lineage": dict(lineage),
    }
    entrypoint = _entrypoint(config.get("entrypoint"))
    if entrypoint:
        spec["entrypoint"] = entrypoint
    if baseline:
        spec["baseline"] = dict(baseline)
    if config.get("description"):
        spec["description"] = str(config["description"])
    labels = {
        **{str(k): str(v) for k, v in (config.get("tags") or {}).items()},
        LABEL_MODEL: model_name,
        LABEL_VERSION: version,
        LABEL_PIPELINE_RUN: label_value(run_name),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND_MODEL,
        "metadata": {
            "name": model_object_name(model_name, version),
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_RUN_UID: run_uid, ANNOTATION_STEP: str(step["name"])},
        },
        "spec": spec,
    }
