"""`mlkube batch create|invoke|jobs|run-local`: batch endpoints from the command line.

Argument handling and I/O only: manifests, the job `invoke` creates and rendering live in
`batch_view`, the live progress in `batch_progress`, the `jobs` verbs in `batch_jobs` and the
local run in `batch_local`. Schema and CEL rules are checked by the API server, whose messages
are shown as they are; `--wait` and its exit codes are `batch_follow`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

from mlkube.api.batch import INPUT_FORMATS
from mlkube.cli import batch_jobs, batch_local
from mlkube.cli import batch_view as view
from mlkube.cli.batch_api import create, get_endpoint
from mlkube.cli.batch_follow import add_wait_option, follow, wait_timeout
from mlkube.cli.endpoint_api import connect
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.contract import GROUP

FIELD_MANAGER: Final = "mlkube-cli"


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser("batch", help="batch endpoints: create, invoke, jobs, run-local")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="<verb>")

    create_cmd = verbs.add_parser("create", help="create BatchEndpoints/BatchJobs from YAML")
    create_cmd.add_argument("-f", "--file", required=True, help="YAML file ('-' for stdin)")
    create_cmd.set_defaults(func=create_objects)

    invoke = verbs.add_parser("invoke", help="start a BatchJob of an endpoint over an input")
    invoke.add_argument("endpoint", help="BatchEndpoint name")
    invoke.add_argument("--input", required=True, help="input file or folder URI")
    invoke.add_argument("--input-type", choices=("file", "folder"), default="folder")
    invoke.add_argument("--format", choices=INPUT_FORMATS, default="auto", help="input format")
    invoke.add_argument("--deployment", help="deployment (default: the endpoint's default)")
    invoke.add_argument("--output", help="output folder URI (default: the operator's store)")
    invoke.add_argument(
        "--mini-batch-size", help="N files or Nrows rows per mini-batch (e.g. 10, 10000rows)"
    )
    invoke.add_argument("--instance-count", type=int, help="pods scoring at once")
    invoke.add_argument("--name", help="job name (default: generated from the endpoint's)")
    add_wait_option(invoke)
    invoke.set_defaults(func=invoke_endpoint)

    batch_jobs.add_commands(verbs)
    batch_local.add_commands(verbs)
    for verb in (create_cmd, invoke):
        add_kube_options(verb)


def create_objects(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else _read_text(args.file)
    kube, namespace = connect(args)
    docs = view.read_manifests(text, namespace)
    for doc in docs:
        created = create(kube, doc, FIELD_MANAGER)
        meta = created["metadata"]
        print(f"{doc['kind'].lower()}.{GROUP}/{meta['name']} created in namespace "
              f"{meta['namespace']}")  # fmt: skip
    return 0


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc


def invoke_endpoint(args: argparse.Namespace) -> int:
    if args.instance_count is not None and args.instance_count < 1:
        raise CliError("--instance-count must be at least 1")
    timeout = wait_timeout(args)
    # Checked before connecting: a bad flag is reported even without a cluster.
    body = view.build_job(
        args.endpoint, "", input_uri=args.input, input_type=args.input_type,
        input_format=args.format, name=args.name, deployment=args.deployment,
        output_uri=args.output, size=args.mini_batch_size, instance_count=args.instance_count,
    )  # fmt: skip
    kube, namespace = connect(args)
    body["metadata"]["namespace"] = namespace
    # A clear "endpoint not found" / "no deployment X" before creating a job that would fail.
    view.deployment_of(get_endpoint(kube, namespace, args.endpoint), args.deployment)
    created = create(kube, body, FIELD_MANAGER)
    name = created["metadata"]["name"]
    print(f"batchjob.{GROUP}/{name} created in namespace {namespace}", flush=True)
    if args.wait is None:
        print(f"follow it with: mlkube batch jobs show {name} -n {namespace}")
        return 0
    return follow(kube, namespace, name, timeout)
