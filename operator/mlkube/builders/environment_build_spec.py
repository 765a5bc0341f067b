"""The inputs of an Environment build: the request types, the Job/ConfigMap names and labels,
`build.json` (docs/environments.md §2.1) and the reports the build pod hands back.

`build.json` is the whole contract between the operator and the build tools
(`mlkube.envbuild`): already normalised (pip lines, parsed conda file, sorted apt packages),
so the tools, which run in arbitrary base images with the standard library only, never parse
YAML or decide anything the build key depends on. Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from mlkube import contract as c
from mlkube.builders.names import label_value
from mlkube.builders.operator_config import OperatorConfig
from mlkube.envbuild.contract import find_packages
from mlkube.reconcile.environment_key import BuildInputs, build_tag, canonical_json, key_hex

BUILD_PREFIX: Final = "envbuild-"
PROBE_PREFIX: Final = "envprobe-"
LABEL_BUILD_KEY: Final = c.LABEL_BUILD_KEY
LABEL_ENVIRONMENT: Final = c.LABEL_ENVIRONMENT
MAX_FILES_BYTES: Final = 64 * 1024  # spec.build.files in all (CEL cannot sum a list)
ANNOTATION_BUILD_KEY: Final = "mlkube.dev/build-key"
ANNOTATION_ENVIRONMENT: Final = "mlkube.dev/environment"  # namespace/name:version
COMPONENT_BUILD: Final = "environment-build"
COMPONENT_PROBE: Final = "environment-probe"
SPEC_KEY: Final = "build.json"
SPEC_VERSION: Final = 1


class EnvironmentBuildError(ValueError):
    """A build that cannot be started as asked (the message says what to change)."""


@dataclass(frozen=True)
class EnvironmentRef:
    namespace: str
    name: str  # spec.environmentName
    version: str
    object_name: str  # metadata.name

    @property
    def shown(self) -> str:
        return f"{self.namespace}/{self.name}:{self.version}"


@dataclass(frozen=True)
class PackagedModel:
    name: str
    version: str
    uri: str
    digest: str


@dataclass(frozen=True)
class BuildRequest:
    """One build, resolved: the key, the base by digest, the normalised inputs."""

    environment: EnvironmentRef
    key: str
    base_image: str  # repository@sha256:…
    inputs: BuildInputs
    model: PackagedModel | None = None
    attempt: int = 0  # > 0: the earlier attempts of this key failed (build_job_name)


def build_job_name(key: str, attempt: int = 0) -> str:
    """`envbuild-<key20>`, then `envbuild-<key20>-r<n>` for the n-th retry of a failed build
    (a failed Job is kept for its TTL to show its logs, so a new attempt needs a new name)."""
    return BUILD_PREFIX + key_hex(key, 20) + (f"-r{attempt}" if attempt else "")


def probe_job_name(key: str) -> str:
    return PROBE_PREFIX + key_hex(key, 20)


def tools_image(config: OperatorConfig) -> str:
    return config.build.tools_image or config.serving_image


def labels(key: str, environment: EnvironmentRef, component: str) -> dict[str, str]:
    return {
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_COMPONENT: component,
        LABEL_BUILD_KEY: key_hex(key, 63),
        LABEL_ENVIRONMENT: label_value(f"{environment.namespace}.{environment.object_name}"),
    }


def object_annotations(key: str, environment: EnvironmentRef) -> dict[str, str]:
    return {ANNOTATION_BUILD_KEY: key, ANNOTATION_ENVIRONMENT: environment.shown}


def build_document(request: BuildRequest, config: OperatorConfig) -> dict[str, Any]:
    """`build.json`: everything the tools need, normalised (they never parse YAML)."""
    build = config.build
    if build.registry is None:
        raise EnvironmentBuildError(
            "no registry to push environment images to: set MLKUBE_BUILD_REGISTRY "
            "(chart value build.registry) to host[:port]/prefix"
        )
    inputs, model = request.inputs, request.model
    total = sum(len(f.content.encode()) for f in inputs.files)
    if total > MAX_FILES_BYTES:
        raise EnvironmentBuildError(
            f"spec.build.files hold {total} bytes; at most {MAX_FILES_BYTES} in all (put larger "
            "files in a package installed with pip, or in the base image)"
        )
    return {
        "version": SPEC_VERSION,
        "buildKey": request.key,
        "environment": {
            "namespace": request.environment.namespace,
            "name": request.environment.name,
            "version": request.environment.version,
        },
        "base": request.base_image,
        "pip": list(inputs.pip),
        "conda": inputs.conda.document() if inputs.conda else None,
        "apt": list(inputs.apt),
        "aptSources": list(build.apt_sources),
        "files": [
            {"path": f.path, "mode": f.mode, "content": f.content}
            for f in sorted(inputs.files, key=lambda f: f.path)
        ],
        "env": [{"name": n, "value": v} for n, v in inputs.env],
        "pipSettings": build.pip.to_json(),
        "model": (
            {"name": model.name, "version": model.version, "uri": model.uri, "digest": model.digest}
            if model
            else None
        ),
        "target": {
            "registry": build.registry,
            "repository": build.repository(),
            "tag": build_tag(request.key),
            "insecure": build.registry_insecure,
        },
    }


def _configmap(
    name: str, namespace: str, key: str, environment: EnvironmentRef, component: str,
    document: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(key, environment, component),
            "annotations": object_annotations(key, environment),
        },
        "data": {SPEC_KEY: canonical_json(document).decode()},
    }


def inputs_configmap(
    request: BuildRequest, config: OperatorConfig, namespace: str
) -> dict[str, Any]:
    """ConfigMap named as its Job (`build_job_name`) with `build.json`; created before the
    Job, owned by it afterwards (`inputs_owner`)."""
    document = build_document(request, config)
    return _configmap(build_job_name(request.key, request.attempt), namespace, request.key,
                      request.environment, COMPONENT_BUILD, document)  # fmt: skip


def probe_configmap(
    environment: EnvironmentRef, image: str, key: str, config: OperatorConfig, namespace: str
) -> dict[str, Any]:
    """ConfigMap `envprobe-<key20>`: a build.json that installs nothing (the install script
    wants one even with --probe)."""
    document = {
        "version": SPEC_VERSION,
        "buildKey": key,
        "probe": True,
        "image": image,
        "environment": {"namespace": environment.namespace, "name": environment.name,
                        "version": environment.version},
        "pip": [], "conda": None, "apt": [], "aptSources": [], "files": [], "env": [],
        "pipSettings": config.build.pip.to_json(),
        "model": None,
    }  # fmt: skip
    return _configmap(probe_job_name(key), namespace, key, environment, COMPONENT_PROBE, document)


def inputs_owner(job_name: str, job_uid: str) -> dict[str, Any]:
    """The merge patch that makes the ConfigMap go with its Job (ttlSecondsAfterFinished)."""
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid,
             "controller": True, "blockOwnerDeletion": False}  # fmt: skip
    return {"metadata": {"ownerReferences": [owner]}}


def parse_termination(message: str | None) -> dict[str, Any] | None:
    """The JSON a `push`/`probe` container wrote as its termination message, or None when it
    is not one (a failure's log tail)."""
    try:
        value = json.loads(message or "")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_packages(log: str) -> list[str] | None:
    """The package list from the `{"mlkubePackages": [...]}` line of a push/probe log (the
    last one wins), or None when the log has none (the tools' own parser)."""
    return find_packages(log)
