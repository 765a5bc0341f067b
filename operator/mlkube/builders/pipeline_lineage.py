"""Lineage of a Model registered by a pipeline, from the run and its upstream steps (pure).

`spec.lineage` is computed, never typed by hand: the run (`<namespace>/<run>`, system
`mlkube`), every URI and Model input of the steps upstream of the registering step
(transitively, with the digests they were verified at), the image (with digest) of the step
that produced the artifact, the code from run parameters `repository` + `commit`, the run's
parameters and the metrics of `metricsFrom`. A lineage that cannot be stated truthfully (a
commit that is not a hash) is an error, not a silent omission.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from mlkube.builders.pipeline_outcome import ResolvedInput, StepResult

SYSTEM: Final = "mlkube"
MAX_DATASETS: Final = 32
MAX_ENTRIES: Final = 64
MAX_VALUE: Final = 4096
_COMMIT: Final = re.compile(r"^[0-9a-f]{7,64}$")


class LineageError(ValueError):
    """The lineage cannot be built as declared (message names what is wrong)."""


def upstream_steps(start: Iterable[str], steps: Mapping[str, StepResult]) -> list[str]:
    """`start` and every step they depend on (dependsOn and fromStep inputs), transitively,
    in name order; unknown names are ignored (the DAG check already refused them)."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen or name not in steps:
            continue
        seen.add(name)
        spec = steps[name].spec
        todo.extend(str(dep) for dep in spec.get("dependsOn") or [])
        for item in spec.get("inputs") or []:
            source = item.get("fromStep") or {}
            if source.get("step"):
                todo.append(str(source["step"]))
    return sorted(seen)


def step_inputs(result: StepResult) -> list[ResolvedInput]:
    """The inputs as resolved when the step ran, else as declared in its spec."""
    if result.inputs:
        return list(result.inputs)
    declared = []
    for item in result.spec.get("inputs") or []:
        name = str(item.get("name") or "")
        if item.get("uri"):
            declared.append(ResolvedInput(name, "uri", uri=item["uri"], digest=item.get("digest")))
        elif item.get("model"):
            declared.append(ResolvedInput(name, "model", model=str(item["model"])))
    return declared


def datasets(
    steps: Mapping[str, StepResult],
    names: Iterable[str],
    models: Mapping[str, tuple[str, str | None]],
) -> list[dict[str, Any]]:
    """DatasetRefs for the URI and Model inputs of `names`: `<step>/<input>` → uri, digest.

    `models` maps a Model name to its (artifact uri, verified digest) for Model inputs that
    were recorded without a uri. Lineage holds at most 32 datasets: more is an error.
    """
    refs = []
    for name in names:
        for item in step_inputs(steps[name]):
            if item.source not in ("uri", "model"):
                continue
            uri, digest = item.uri, item.digest
            if item.source == "model" and item.model and (not uri or not digest):
                known_uri, known_digest = models.get(item.model, (None, None))
                uri, digest = uri or known_uri, digest or known_digest
            if not uri:
                raise LineageError(f"input {item.name} of step {name}: its location is unknown")
            ref: dict[str, Any] = {"name": f"{name}/{item.name}", "uri": uri}
            if digest:
                ref["digest"] = digest
            refs.append(ref)
    if len(refs) > MAX_DATASETS:
        raise LineageError(f"{len(refs)} upstream inputs: Model lineage holds {MAX_DATASETS}")
    return refs


def pinned_image(image: str, image_digest: str | None) -> str:
    """`image` pinned by digest: as given when already pinned, else with the recorded digest
    (the kubelet's imageID is `sha256:…` or `repo@sha256:…`)."""
    if "@sha256:" in image or not image_digest:
        return image
    digest = image_digest.rpartition("@")[2] if "@" in image_digest else image_digest
    return f"{image}@{digest}" if digest.startswith("sha256:") else image


def code_ref(parameters: Mapping[str, str]) -> dict[str, str] | None:
    """{repository, commit} when both run parameters are given (and commit is a hash)."""
    repository, commit = parameters.get("repository"), parameters.get("commit")
    if not repository or not commit:
        return None
    if not _COMMIT.match(commit):
        raise LineageError(
            f"run parameter commit={commit!r} is not a commit hash (7 to 64 lowercase hex): "
            "Model lineage records commits, not branch or tag names"
        )
    return {"repository": repository, "commit": commit}


def metrics_from(
    sources: Iterable[Mapping[str, Any]], steps: Mapping[str, StepResult]
) -> dict[str, float]:
    """Metrics of every `{step, output}` in order (a later source wins on a shared name)."""
    merged: dict[str, float] = {}
    for source in sources:
        name = str(source.get("step") or "")
        if name not in steps:
            raise LineageError(f"metricsFrom names step {name!r}, which is not in the run")
        merged.update({k: float(v) for k, v in steps[name].metrics.items()})
    if len(merged) > MAX_ENTRIES:
        raise LineageError(f"{len(merged)} metrics: Model lineage holds {MAX_ENTRIES}")
    return merged


def run_parameters(run: Mapping[str, Any]) -> dict[str, str]:
    """The run's resolved parameters (status, with defaults), else the ones it was given."""
    resolved = (run.get("status") or {}).get("parameters") or (run.get("spec") or {}).get(
        "parameters"
    )
    return {str(k): str(v) for k, v in (resolved or {}).items()}


def lineage_roots(step: Mapping[str, Any]) -> list[str]:
    """The steps a registerModel step's lineage walks up from: the artifact's, metricsFrom's,
    the baseline's and its dependsOn (`mlkube model lineage` walks the same)."""
    config = step.get("registerModel") or {}
    refs = [config.get("artifact") or {}, *(config.get("metricsFrom") or [])]
    refs += [config["baseline"]] if config.get("baseline") else []
    return [*(str(r.get("step")) for r in refs), *(str(d) for d in step.get("dependsOn") or [])]


def build_lineage(
    run: Mapping[str, Any],
    step: Mapping[str, Any],
    steps: Mapping[str, StepResult],
    models: Mapping[str, tuple[str, str | None]],
) -> dict[str, Any]:
    """`spec.lineage` (wire form) for registerModel `step` of `run`."""
    config = step.get("registerModel") or {}
    producer = str((config.get("artifact") or {}).get("step") or "")
    meta = run.get("metadata") or {}
    parameters = run_parameters(run)
    if len(parameters) > MAX_ENTRIES:
        raise LineageError(f"{len(parameters)} run parameters: Model lineage holds {MAX_ENTRIES}")
    sources = config.get("metricsFrom") or []
    start = lineage_roots(step)
    lineage: dict[str, Any] = {
        "run": {"id": f"{meta.get('namespace')}/{meta.get('name')}", "system": SYSTEM},
        "datasets": datasets(steps, upstream_steps(start, steps), models),
        "parameters": {k: v[:MAX_VALUE] for k, v in parameters.items()},
        "metrics": metrics_from(sources, steps),
    }
    image = steps[producer].spec.get("image") if producer in steps else None
    environment = steps[producer].environment if producer in steps else None
    if environment and environment.get("image"):
        # The step ran on an Environment: its digest-pinned image, and which one it was.
        lineage["environment"] = {k: environment[k] for k in ("name", "version", "image")
                                  if environment.get(k)}  # fmt: skip
    elif image:
        lineage["environment"] = {"image": pinned_image(str(image), steps[producer].image_digest)}
    code = code_ref(parameters)
    if code is not None:
        lineage["code"] = code
    return lineage
