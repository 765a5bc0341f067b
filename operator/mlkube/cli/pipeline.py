"""`mlkube pipeline create|list|show|delete|run|runs|run-local`: pipelines from the command line.

Argument handling and I/O only: texts are built in `pipeline_view`/`pipeline_runview`, the DAG
view in `pipeline_dagview`, progress lines in `pipeline_progress`, the `runs` verbs in
`pipeline_runs` and the local run in `pipeline_local`. A Pipeline is validated with the
pydantic kind before it is sent (cycles and unknown placeholders in one message); the API
server's CEL messages are shown as they are.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from mlkube.api.pipeline_run import CACHE_POLICIES
from mlkube.cli import pipeline_local, pipeline_runs
from mlkube.cli import pipeline_view as view
from mlkube.cli.batch_follow import add_wait_option, wait_timeout
from mlkube.cli.endpoint_api import connect
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.cli.model_view import as_list, dump, without_managed_fields
from mlkube.cli.pipeline_api import (
    FIELD_MANAGER,
    create,
    delete_object,
    get_pipeline,
    list_objects,
)
from mlkube.contract import GROUP, KIND_PIPELINE


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser(
        "pipeline", help="pipelines: create, show, run (--wait), runs, run-local"
    )
    verbs = group.add_subparsers(dest="verb", required=True, metavar="<verb>")

    create_cmd = verbs.add_parser("create", help="create Pipelines (and PipelineRuns) from YAML")
    create_cmd.add_argument("-f", "--file", required=True, help="YAML file ('-' for stdin)")
    create_cmd.set_defaults(func=create_objects)

    list_cmd = verbs.add_parser("list", help="list Pipelines")
    list_cmd.add_argument("-A", "--all-namespaces", action="store_true")
    list_cmd.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    list_cmd.set_defaults(func=list_pipelines)

    show = verbs.add_parser("show", help="parameters, steps, schedules, triggers and the DAG")
    show.add_argument("pipeline")
    show.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    show.set_defaults(func=show_pipeline)

    delete = verbs.add_parser("delete", help="delete a Pipeline (its runs go with it)")
    delete.add_argument("pipeline")
    delete.set_defaults(func=delete_pipeline)

    run = verbs.add_parser("run", help="start a PipelineRun; --wait follows each step")
    run.add_argument("pipeline")
    run.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                     help="a parameter value (repeatable)")  # fmt: skip
    run.add_argument("--cache-policy", choices=CACHE_POLICIES, default="Default",
                     help="ForceRerun: run every step (and refresh the cache)")  # fmt: skip
    run.add_argument("--name", help="run name (default: generated from the pipeline's)")
    add_wait_option(run)
    run.set_defaults(func=run_pipeline)

    for verb in (create_cmd, list_cmd, show, delete, run):
        add_kube_options(verb)
    pipeline_runs.add_commands(verbs)
    pipeline_local.add_commands(verbs)


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc


def create_objects(args: argparse.Namespace) -> int:
    text = read_text(args.file)
    # Checked before connecting: a bad pipeline is reported even without a cluster.
    view.read_manifests(text, args.namespace or "default")
    kube, namespace = connect(args)
    for doc in view.read_manifests(text, namespace):
        created = create(kube, doc, FIELD_MANAGER)
        meta = created["metadata"]
        print(f"{doc['kind'].lower()}.{GROUP}/{meta['name']} created in namespace "
              f"{meta['namespace']}")  # fmt: skip
    return 0


def list_pipelines(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    items = list_objects(kube, KIND_PIPELINE, None if args.all_namespaces else namespace)
    if args.output == "table":
        print(view.render_pipelines(items, datetime.now(UTC), namespaces=args.all_namespaces))
    else:
        print(dump(as_list([without_managed_fields(o) for o in items]), args.output))
    return 0


def show_pipeline(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    obj = get_pipeline(kube, namespace, args.pipeline)
    if args.output == "text":
        print(view.render_pipeline(obj, datetime.now(UTC)))
    else:
        print(dump(without_managed_fields(obj), args.output))
    return 0


def delete_pipeline(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    if not delete_object(kube, KIND_PIPELINE, namespace, args.pipeline):
        raise CliError(f"Pipeline {namespace}/{args.pipeline} not found")
    print(f"pipeline.{GROUP}/{args.pipeline} deleted")
    return 0


def run_pipeline(args: argparse.Namespace) -> int:
    timeout = wait_timeout(args)
    values = view.parse_parameters(args.param)
    kube, namespace = connect(args)
    pipeline = get_pipeline(kube, namespace, args.pipeline)
    # Unknown, missing or mistyped parameters are said now, not as a Failed run later.
    view.check_run_parameters(pipeline, values)
    body = view.build_run(args.pipeline, namespace, parameters=values, name=args.name,
                          cache_policy=args.cache_policy)  # fmt: skip
    created = create(kube, body, FIELD_MANAGER)
    name = created["metadata"]["name"]
    print(f"pipelinerun.{GROUP}/{name} created in namespace {namespace}", flush=True)
    if args.wait is None:
        print(f"follow it with: mlkube pipeline runs show {name} -n {namespace}")
        return 0
    return pipeline_runs.follow(kube, namespace, name, timeout, view.dag_of(pipeline.get("spec")))
