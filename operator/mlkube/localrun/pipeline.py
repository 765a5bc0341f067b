"""Pure: one container step of a Pipeline resolved for `mlkube pipeline run-local`.

The step runs on this machine as the pod's three processes (docs/pipelines.md §2): `python -m
mlkube_serving step inputs`, the user's command under the contract's /bin/sh wrapper, then
`step outputs`, all with MLKUBE_STEP_ROOT pointing at a local folder instead of /mlkube. Two
renderings of the same templates are made: with the pod's paths (/mlkube/...) for the cache
key, so the key is the one the operator computes for the same step (reconcile/pipeline_cache.py)
and does not change with the temp folder; with the local paths for the process. A literal
`/mlkube/...` in command, args or env values is mapped to the local root as well.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mlkube.api.pipeline_step import Step
from mlkube.builders import pipeline_contract as pc
from mlkube.reconcile.pipeline_cache import cache_key, normalize_image, resolve_image_digest
from mlkube.reconcile.pipeline_params import TemplateError, render, template_values

_ROOT: Final = re.compile(r"(?<![\w./-])" + re.escape(pc.STEP_ROOT) + r"(?=/|$)")
LOCAL_IMAGE_PREFIX: Final = "local:"  # the key's image when the image has no known digest


class LocalStepError(ValueError):
    """The step cannot run locally as specified (the message names why)."""


@dataclass(frozen=True)
class ResolvedInput:
    """An input as the pod sees it: an artifact (uri + digest) or a value; `keyed` enters
    the cache key exactly as the operator puts it (controllers/pipeline_start.py)."""

    name: str
    keyed: str
    uri: str | None = None
    digest: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class LocalStep:
    name: str
    key: str
    image_note: str  # '' when the key has the image's digest
    manifest: pc.StepManifest
    main_argv: list[str]
    env: dict[str, str]  # for main: contract env, parameters, the user's values


def resolve_input(
    step: Step, index: int, parameters: Mapping[str, str],
    upstream: Mapping[str, Mapping[str, Any]], digest_of: Callable[[str], str],
    model_of: Callable[[str], tuple[str, str]] | None = None,
) -> ResolvedInput:  # fmt: skip
    """`upstream`: step name → its status entry; `digest_of(uri)` computes a content digest;
    `model_of(name)` gives a Ready Model's (uri, verified digest) when a cluster is at hand."""
    i = step.inputs[index]
    if i.from_parameter is not None:
        value = parameters[i.from_parameter]
        return ResolvedInput(i.name, "value:" + value, value=value)
    if i.from_step is not None:
        source = upstream.get(i.from_step.step) or {}
        found = next((o for o in source.get("outputs") or []
                      if o.get("name") == i.from_step.output), None)  # fmt: skip
        if found is None and source.get("metrics"):
            found = {"name": i.from_step.output, "type": "metrics", "metrics": source["metrics"]}
        if found is None:
            raise LocalStepError(
                f"input {i.name}: step {i.from_step.step} recorded no output {i.from_step.output}"
            )
        if found.get("type", "artifact") == "artifact":
            return ResolvedInput(i.name, str(found.get("digest")), uri=found.get("uri"),
                                 digest=found.get("digest"))  # fmt: skip
        value = str(found.get("value") if "value" in found else found.get("metrics"))
        return ResolvedInput(i.name, "value:" + value, value=value)
    if i.uri is not None:
        digest = i.digest or str(digest_of(i.uri))
        return ResolvedInput(i.name, digest, uri=i.uri, digest=digest)
    if i.model is not None and model_of is not None:
        uri, digest = model_of(i.model)
        return ResolvedInput(i.name, digest, uri=uri, digest=digest)
    raise LocalStepError(
        f"input {i.name}: Model inputs need the cluster (run-local NAME reads the Model; with"
        " -f give the artifact as a uri input with its digest)"
    )


def local_path(text: str, root: str) -> str:
    """`/mlkube/...` in a rendered value → the same path under the local root."""
    return _ROOT.sub(root.replace("\\", "\\\\"), text)


def _values(step: Step, inputs: Sequence[ResolvedInput], parameters: Mapping[str, str],
            paths: pc.StepPaths, run: str, uid: str) -> dict[str, str]:  # fmt: skip
    return template_values(
        parameters=parameters,
        inputs={i.name: paths.input(i.name) if i.uri else (i.value or "") for i in inputs},
        outputs={o.name: paths.output(o.name) for o in step.outputs},
        run_name=run, run_uid=uid,
    )  # fmt: skip


def resolve_step(
    step: Step,
    inputs: Sequence[ResolvedInput],
    *,
    parameters: Mapping[str, str],
    namespace: str,
    run: str,
    uid: str,
    attempt: int,
    store: str,
    root: Path,
    image_digests: Sequence[tuple[str, str]] = (),
) -> LocalStep:
    """The key, the manifest and the main process of one attempt (LocalStepError)."""
    # Locally the command runs on this machine: an environment reference stands in for its image.
    image = step.image or "environment/" + str(step.environment).replace("@", ":")
    pod = _values(step, inputs, parameters, pc.StepPaths(), run, uid)
    here = _values(step, inputs, parameters, pc.StepPaths(str(root)), run, uid)
    try:
        key_args = [render(a, pod) for a in step.args]
        key_command = [render(a, pod) for a in step.command]
        key_env = [{**e.model_dump(by_alias=True, exclude_none=True),
                    "value": render(e.value, pod)} for e in step.env]  # fmt: skip
        args = [local_path(render(a, here), str(root)) for a in step.args]
        command = [local_path(render(a, here), str(root)) for a in step.command]
        user_env = {e.name: local_path(render(e.value, here), str(root)) for e in step.env}
    except TemplateError as err:
        raise LocalStepError(str(err)) from err
    digest, why = resolve_image_digest(image, image_digests)
    note = ""
    if digest is None:
        # Locally the command runs on this machine, not in the image: the reference stands in.
        digest, note = LOCAL_IMAGE_PREFIX + normalize_image(image), why
    key = cache_key(
        namespace=namespace, image_digest=digest, command=key_command, args=key_args,
        env=key_env, inputs={i.name: i.keyed for i in inputs},
        outputs=[(o.name, str(o.type)) for o in step.outputs], version=step.cache.version,
        parameters=parameters, ignored_inputs=step.cache.ignored_inputs,
    )  # fmt: skip
    prefix = pc.attempt_prefix(store, namespace, run, step.name, attempt)
    try:
        manifest = pc.StepManifest(
            run=run, step=step.name, attempt=attempt, prefix=prefix,
            inputs=tuple(pc.StepInput(i.name, i.uri, i.digest or "") for i in inputs if i.uri),
            outputs=tuple(pc.StepOutput(o.name, o.type) for o in step.outputs),
        )  # fmt: skip
        argv = pc.main_command(command, args) if command else pc.main_command(args[:1], args[1:])
        env = manifest.env(pc.StepPaths(str(root)))
        env.update({pc.step_env_name("input", i.name): i.value or ""
                    for i in inputs if not i.uri})  # fmt: skip
        env.update({pc.step_env_name("param", k): v for k, v in parameters.items()})
    except pc.ContractError as err:
        raise LocalStepError(str(err)) from err
    env[pc.ENV_STEP_ROOT] = str(root)
    env.update({k: v for k, v in user_env.items() if k not in env})
    return LocalStep(step.name, key, note, manifest, argv, env)


def step_program(container: str) -> list[str]:
    """`python -m mlkube_serving step inputs|outputs` with this interpreter."""
    return [sys.executable, "-m", "mlkube_serving", "step", container]
