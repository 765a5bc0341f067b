"""`mlkube model register|list|show|lineage|archive`: the model registry from the command line.

Argument handling and orchestration only: names, tags and the manifest come from
`model_object`, rendering from `model_view`, storage from `mlkube.storage` and the API from
`kube`, so each part is tested on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlkube.api.model import FRAMEWORKS
from mlkube.cli import (
    model_env,
    model_lineage,
    model_lineage_view,
    model_object,
    model_package,
    model_view,
    stores,
)
from mlkube.cli.errors import CliError
from mlkube.cli.kube import ModelApi, add_kube_options
from mlkube.cli.progress import ProgressBar, format_bytes
from mlkube.contract import ENV_STORE, GROUP, LABEL_ARCHIVED, LABEL_MODEL, LABEL_VERSION
from mlkube.storage import ArtifactFacts, compute_digest, publish

PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser("model", help="register, list, show and archive models")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="<verb>")

    register_cmd = verbs.add_parser("register", help="upload an artifact and create a Model")
    register_cmd.add_argument("--name", required=True, help="model name (a DNS label)")
    register_cmd.add_argument("--version", required=True, help="model version, e.g. 3 or 1.2.0")
    register_cmd.add_argument(
        "--path", required=True, help="local file or folder, or an existing artifact URI"
    )
    register_cmd.add_argument(
        "--framework", choices=FRAMEWORKS, help="default: inferred from the path"
    )
    register_cmd.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="label (repeatable)"
    )
    register_cmd.add_argument(
        "--store",
        help=f"store prefix to copy the model into, e.g. s3://bucket/models (default: "
        f"${ENV_STORE}, else the kubeconfig context's default store)",
    )
    register_cmd.add_argument(
        "--in-place",
        action="store_true",
        help="register a local path where it lies, without copying it (this machine only)",
    )
    register_cmd.add_argument(
        "--overwrite",
        action="store_true",
        help="replace different bytes already at the upload target, if no Model uses them",
    )
    register_cmd.add_argument("--description", help="free-text description")
    register_cmd.add_argument("--entrypoint", help="scoring script inside the model folder")
    register_cmd.add_argument(
        "--baseline", help="drift baseline profile (from `mlkube model profile`), stored beside it"
    )
    model_env.add_register_options(register_cmd)
    register_cmd.set_defaults(func=register)

    list_cmd = verbs.add_parser("list", help="list models (archived ones only with --all)")
    list_cmd.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    list_cmd.add_argument("--name", help="only versions of this model")
    list_cmd.add_argument("--all", action="store_true", help="include archived models")
    list_cmd.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    list_cmd.set_defaults(func=list_models)

    show_cmd = verbs.add_parser("show", help="show one model with lineage and verified facts")
    show_cmd.add_argument("name", help="Model object name, or MODEL:VERSION")
    show_cmd.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    show_cmd.set_defaults(func=show)

    lineage_cmd = verbs.add_parser(
        "lineage", help="walk Model -> run -> inputs -> upstream runs, as a tree"
    )
    lineage_cmd.add_argument("name", help="Model object name, or MODEL:VERSION")
    lineage_cmd.add_argument("-o", "--output", choices=("text", "json"), default="text")
    lineage_cmd.set_defaults(func=lineage)

    archive_cmd = verbs.add_parser("archive", help="hide a model from `list` (still resolvable)")
    archive_cmd.add_argument("name", help="Model object name, or MODEL:VERSION")
    archive_cmd.set_defaults(func=archive)

    # Listed for --help only: `mlkube model profile` is dispatched before parsing (cli/main.py).
    verbs.add_parser(
        "profile", add_help=False,
        help="build a drift baseline profile from training data (--data FILE; see --help)",
    )  # fmt: skip

    for verb in (register_cmd, list_cmd, show_cmd, lineage_cmd, archive_cmd):
        add_kube_options(verb)
    model_package.add_commands(verbs)


def connect(args: argparse.Namespace) -> tuple[ModelApi, str]:
    """The API client and the namespace to use (flag, else the kubeconfig context's)."""
    api = ModelApi(args.kubeconfig, args.context)
    return api, args.namespace or api.default_namespace


def register(args: argparse.Namespace) -> int:
    name = model_object.check_model_name(args.name)
    version = model_object.check_version(args.version)
    tags = model_object.parse_tags(args.tag)
    is_uri = "://" in args.path
    if not is_uri and not os.path.exists(args.path):
        raise CliError(f"path {args.path!r} does not exist")
    framework = args.framework or model_object.infer_framework(args.path)
    if framework is None:
        raise CliError(
            f"cannot infer the framework of {args.path!r} (.pkl/.joblib: sklearn, .onnx: onnx, "
            f"folder with MLmodel: mlflow); pass --framework {{{','.join(FRAMEWORKS)}}}"
        )
    if args.entrypoint is not None and not is_uri:
        model_object.check_entrypoint(args.path, args.entrypoint)
    if (
        args.baseline is not None
        and "://" not in args.baseline
        and not os.path.isfile(args.baseline)
    ):
        raise CliError(f"baseline profile {args.baseline!r} is not a file")
    # Validate everything but the artifact facts before any slow upload or API call.
    draft = model_object.build_model_object(
        model_name=name, version=version, framework=framework,
        artifact_uri=args.path if is_uri else Path(os.path.abspath(args.path)).as_uri(),
        digest=PLACEHOLDER_DIGEST, namespace="default", tags=tags,
        description=args.description, entrypoint=args.entrypoint,
    )  # fmt: skip
    model_object.validate_spec(draft["spec"])
    environment = model_env.plan(args, framework, name, version)

    local = [p for p in (args.path, args.baseline) if p is not None and "://" not in p]
    store = stores.choose_store(args, local[0] if local else None)

    api, namespace = connect(args)
    refuse_existing(api, namespace, name, version)
    properties = environment.check(api, namespace)
    target = Target(store=store, namespace=namespace, name=name, overwrite=args.overwrite, api=api)
    artifact_uri, facts = store_artifact(args.path, target, version)
    baseline = None
    if args.baseline is not None:
        baseline_uri, baseline_facts = store_artifact(args.baseline, target, f"{version}.baseline")
        baseline = (baseline_uri, baseline_facts.digest)
    body = model_object.build_model_object(
        model_name=name, version=version, framework=framework, artifact_uri=artifact_uri,
        digest=facts.digest, namespace=namespace, tags=tags,
        description=args.description, entrypoint=args.entrypoint, baseline=baseline,
    )  # fmt: skip
    body["spec"].update(properties)
    model_object.validate_spec(body["spec"])
    created = api.create(namespace, body)
    print(f"model.{GROUP}/{created['metadata']['name']} created in namespace {namespace}")
    print(f"  artifact: {artifact_uri}")
    files = "file" if facts.file_count == 1 else "files"
    print(f"  digest:   {facts.digest} ({format_bytes(facts.size)}, {facts.file_count} {files})")
    environment.finish(api, namespace)
    return 0


def refuse_existing(api: ModelApi, namespace: str, name: str, version: str) -> None:
    """Versions are immutable: refuse both the same object name and the same labels."""
    target = model_object.object_name(name, version)
    existing = api.get(namespace, target)
    if existing is None:
        selector = f"{LABEL_MODEL}={name},{LABEL_VERSION}={version}"
        existing = next(iter(api.list(namespace, selector)), None)
    if existing is not None:
        spec = existing.get("spec") or {}
        raise CliError(
            f"Model {namespace}/{existing['metadata']['name']} already exists (model "
            f"{spec.get('modelName')!r} version {spec.get('version')!r}); versions are "
            "immutable, register a new version instead"
        )


@dataclass(frozen=True)
class Target:
    """Where `register` uploads to, and who to ask before replacing anything there."""

    store: str | None
    namespace: str
    name: str
    overwrite: bool
    api: ModelApi


def store_artifact(path: str, target: Target, version: str) -> tuple[str, ArtifactFacts]:
    """Digest the artifact where it is, then upload it create-only under
    <store>/<namespace>/<name>/<version>/<digest prefix>/ (see mlkube.storage.upload)."""
    if "://" in path:
        return path, compute_digest(path)
    if not target.store:  # --in-place (stores.choose_store refuses it otherwise)
        local_uri = Path(os.path.abspath(path)).as_uri()
        return local_uri, compute_digest(local_uri)
    store = target.store.rstrip("/")
    progress = ProgressBar(f"uploading to {store}/{target.namespace}/{target.name}/{version}")
    return publish(
        path, store, namespace=target.namespace, name=target.name, version=version,
        progress=progress, overwrite=target.overwrite,
        references=lambda uri: model_references(target.api, uri),
    )  # fmt: skip


def model_references(api: ModelApi, uri: str) -> list[str]:
    """`namespace/name` of every Model, in any namespace, whose artifact or baseline is `uri`
    or lies under it; refuses (CliError) when the cluster-wide list is not allowed."""
    prefix = uri.rstrip("/") + "/"
    users = []
    for obj in api.list_all_namespaces():
        spec = obj.get("spec") or {}
        for ref in (spec.get("artifact") or {}, spec.get("baseline") or {}):
            used = str(ref.get("uri") or "")
            if used and (used.rstrip("/") == uri.rstrip("/") or used.startswith(prefix)):
                meta = obj.get("metadata") or {}
                users.append(f"{meta.get('namespace')}/{meta.get('name')}")
    return users


def resolve_name(name: str) -> str:
    """`credit-risk:3` is shorthand for the object name credit-risk-v3."""
    model_name, sep, version = name.partition(":")
    return model_object.object_name(model_name, version) if sep else name


def list_models(args: argparse.Namespace) -> int:
    selector = [f"{key}={value}" for key, value in model_object.parse_tags(args.tag).items()]
    if args.name:
        selector.append(f"{LABEL_MODEL}={args.name}")
    if not args.all:
        selector.append(f"{LABEL_ARCHIVED}!=true")
    api, namespace = connect(args)
    items = api.list(namespace, ",".join(selector))
    if args.output == "table":
        print(model_view.render_table(items, datetime.now(UTC)))
    else:
        ordered = [model_view.without_managed_fields(obj) for obj in model_view.sort_models(items)]
        print(model_view.dump(model_view.as_list(ordered), args.output))
    return 0


def show(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    obj = get_existing(api, namespace, resolve_name(args.name))
    if args.output == "text":
        print(model_view.render_details(obj, datetime.now(UTC)))
    else:
        print(model_view.dump(model_view.without_managed_fields(obj), args.output))
    return 0


def lineage(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    name = resolve_name(args.name)
    get_existing(api, namespace, name)
    tree = model_lineage_view.lineage_tree(model_lineage.ApiLookup(api), namespace, name)
    if args.output == "json":
        print(json.dumps(tree.as_dict(), indent=2))
    else:
        print(model_lineage_view.render(tree))
    return 0


def archive(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    name = resolve_name(args.name)
    obj = get_existing(api, namespace, name)
    if (obj["metadata"].get("labels") or {}).get(LABEL_ARCHIVED) == "true":
        print(f"model.{GROUP}/{name} is already archived", file=sys.stderr)
        return 0
    api.set_labels(namespace, name, {LABEL_ARCHIVED: "true"})
    print(f"model.{GROUP}/{name} archived (hidden from `mlkube model list`, still usable by name)")
    return 0


def get_existing(api: ModelApi, namespace: str, name: str) -> dict[str, Any]:
    obj = api.get(namespace, name)
    if obj is None:
        raise CliError(f"Model {namespace}/{name} not found (see `mlkube model list --all`)")
    return obj
