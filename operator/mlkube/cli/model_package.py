"""`mlkube model package NAME:VERSION --environment E [--wait]` (Azure ML's `model package`):
an Environment `<model>-pkg:<version>` that builds the model into E's image (docs/
environments.md §5), so a deployment using it starts with no download (air-gapped clusters).

The build fetches the artifact and verifies it against the Model's verified digest, so the
Model must be Ready; E must be Ready too (its image digest is the base) unless it is a curated
environment, which the operator resolves itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from mlkube.cli import env_object, env_wait
from mlkube.cli.batch_follow import wait_timeout
from mlkube.cli.endpoint_api import connect
from mlkube.cli.env_api import (
    FIELD_MANAGER,
    create,
    find_environment,
    get_environment,
    refuse_archived,
)
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.cli.model_object import object_name
from mlkube.contract import API_VERSION, GROUP, KIND_MODEL
from mlkube.k8s import ApiError, Kube


def add_commands(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = verbs.add_parser("package", help="build an image with the model and its environment "
                           "baked in (no download at start)")  # fmt: skip
    cmd.add_argument("model", help="MODEL:VERSION (or the Model object name)")
    cmd.add_argument("--environment", required=True, metavar="NAME:VERSION",
                     help="the environment to build on (yours or a curated mlkube-…)")  # fmt: skip
    env_wait.add_wait_option(cmd)
    add_kube_options(cmd)
    cmd.set_defaults(func=package)


def package_base(env: Mapping[str, Any] | None, ref: str) -> str:
    """The base of the packaging build: a curated reference as is, else E's pinned image."""
    if env_object.is_curated(ref):
        return ref
    status = (env or {}).get("status") or {}
    if status.get("phase") != "Ready" or not status.get("image"):
        raise CliError(f"environment {ref} is not Ready (phase {status.get('phase') or 'Pending'})"
                       f": wait for it (`mlkube env show {ref}`), then package")  # fmt: skip
    return str(status["image"])


def package_environment(model: Mapping[str, Any], base: str, env_ref: str,
                        namespace: str) -> dict[str, Any]:  # fmt: skip
    """The Environment `<model>-pkg:<version>` (pure): base + the Model object (§5)."""
    spec = model.get("spec") or {}
    name, version = str(spec.get("modelName", "")), str(spec.get("version", ""))
    try:
        pkg_name = env_object.check_name(f"{name}-pkg")
    except CliError as exc:
        raise CliError(f"cannot name the package of {name}:{version}: {exc}") from exc
    return env_object.build_environment(
        name=pkg_name, version=env_object.check_version(version), namespace=namespace,
        build=env_object.BuildInputs(base=base), model=str(model["metadata"]["name"]),
        description=f"model {name}:{version} packaged on {env_ref}",
    )  # fmt: skip


def get_model(kube: Kube, namespace: str, ref: str) -> dict[str, Any]:
    model_name, sep, version = ref.partition(":")
    name = object_name(model_name, version) if sep else ref
    try:
        obj = kube.get(API_VERSION, KIND_MODEL, name, namespace)
    except ApiError as err:
        raise CliError(f"cannot get Model {namespace}/{name}: {err}") from err
    if obj is None:
        raise CliError(f"Model {namespace}/{name} not found (see `mlkube model list --all`)")
    phase = (obj.get("status") or {}).get("phase")
    if phase != "Ready":
        raise CliError(f"Model {namespace}/{name} is {phase or 'Pending'}, not Ready: its digest "
                       "must be verified before it is packaged")  # fmt: skip
    return obj


def package(args: argparse.Namespace) -> int:
    timeout = wait_timeout(args)
    if not env_object.is_curated(args.environment):
        env_object.parse_ref(args.environment)
    kube, namespace = connect(args)
    model = get_model(kube, namespace, args.model)
    env = None
    if not env_object.is_curated(args.environment):
        env = get_environment(kube, namespace, args.environment)
        refuse_archived(env, "environment")
    body = package_environment(model, package_base(env, args.environment), args.environment,
                               namespace)  # fmt: skip
    ref = env_object.reference(body)
    existing = find_environment(kube, namespace, ref)
    if existing is not None and existing.get("spec") != body["spec"]:
        raise CliError(f"Environment {ref} already exists in {namespace} with other inputs "
                       f"(a package of this model on another environment: see "
                       f"`mlkube env show {ref}`)")  # fmt: skip
    if existing is None:
        obj = create(kube, body, FIELD_MANAGER)
        print(
            f"environment.{GROUP}/{obj['metadata']['name']} created in namespace {namespace} "
            f"({ref}: {model['metadata']['name']} on {args.environment})",
            flush=True,
        )
    else:
        obj = existing
        print(f"{ref} already packages {model['metadata']['name']} on {args.environment}")
    if args.wait is None:
        print(f"follow it with: mlkube env show {ref} -n {namespace}; use it in a deployment as "
              f"`environment: {ref}`")  # fmt: skip
        return 0
    code = env_wait.wait_and_report(kube, obj, timeout)
    if code == 0:
        print(f"use it in a deployment as `environment: {ref}` (no storage initializer)")
    return code
