"""`mlkube batch run-local (JOB | -f job.yaml)`: a BatchJob's plan run by local processes.

The job, its endpoint's deployment and the Model come from the cluster (the Model must be
Ready: the artifact is downloaded and its verified digest checked by the storage initializer,
as for `endpoint run-local`), or from files plus `--model PATH`. The output defaults to a
folder under the work dir, never the cluster job's own output (that is the cluster's record);
pass `--output` to choose one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlkube.builders.model_facts import ModelProblem, read_model
from mlkube.cli import batch_view as view
from mlkube.cli.batch_api import get_endpoint, get_job
from mlkube.cli.batch_files import use_store_credentials
from mlkube.cli.batch_local_run import LocalBatch, check_workers
from mlkube.cli.batch_progress import JobDisplay, format_count
from mlkube.cli.endpoint_api import connect
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.contract import API_VERSION, KIND_BATCH_ENDPOINT, KIND_BATCH_JOB
from mlkube.localrun.batch import BatchRun, resolve_run
from mlkube.localrun.runner import LocalRunError, initialize_artifact


def add_commands(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = verbs.add_parser("run-local", help="run a BatchJob's plan with local processes")
    cmd.add_argument("job", nargs="?", help="BatchJob in the cluster (or pass -f)")
    cmd.add_argument("-f", "--file", help="YAML with a BatchJob (and optionally its BatchEndpoint)")
    cmd.add_argument("--model", help="local model file or folder (needed with -f)")
    cmd.add_argument("--output", help="output folder URI (default: <work-dir>/output)")
    cmd.add_argument("--workers", type=int, help="indexes run at once (default: instanceCount)")
    cmd.add_argument("--work-dir", help="model, logs and default output (default: a temp dir)")
    cmd.set_defaults(func=run_local)
    add_kube_options(cmd)


def run_local(args: argparse.Namespace) -> int:
    if (args.job is None) == (args.file is None):
        raise CliError("pass a BatchJob name or -f FILE (not both)")
    if args.file and not args.model:
        raise CliError("-f needs --model PATH (the local model the job scores with)")
    if args.model and not os.path.exists(args.model):
        raise CliError(f"model path {args.model!r} does not exist")
    check_workers(args.workers)
    name, spec, deployment, model = _from_file(args) if args.file else _from_cluster(args)
    workdir = Path(args.work_dir or tempfile.mkdtemp(prefix=f"mlkube-batch-{name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # A file's own output is the user's choice; a cluster job's output is the cluster's record.
    declared = (spec.get("output") or {}).get("uri") if args.file else None
    output = args.output or declared or (workdir / "output").absolute().as_uri()
    uris = [str(spec["input"]["uri"]), output] + ([model["uri"]] if model else [])
    use_store_credentials(args, uris)
    if args.model:
        model_dir, framework, digest = os.path.abspath(args.model), None, _local_digest(args.model)
    else:
        assert model is not None
        model_dir = str(workdir / "model")
        print(f"fetching model {model['name']} ({model['digest']})", file=sys.stderr)
        try:
            initialize_artifact(model["uri"], model["digest"], Path(model_dir), workdir,
                                verified=True)  # fmt: skip
        except LocalRunError as exc:
            raise CliError(str(exc)) from exc
        framework, digest = model["framework"], model["digest"]
    run = resolve_run(name, spec, deployment, output, framework=framework, model_digest=digest)
    if run.dropped_env:
        print(f"env not passed to local processes (not on the allow-list): "
              f"{', '.join(run.dropped_env)}", file=sys.stderr)  # fmt: skip
    workers = args.workers or run.instance_count
    print(f"running BatchJob {name} locally: {run.input_uri} -> {run.output_uri} "
          f"(mini-batch size {run.mini_batch_size}, {workers} worker(s) x "
          f"{run.concurrency} process(es), logs in {workdir / 'logs'})",
          file=sys.stderr)  # fmt: skip
    display = JobDisplay(name, interval=5.0)
    try:
        outcome = LocalBatch(run, model_dir, workdir, workers, display).execute()
    finally:
        display.close()
    display({**outcome.status, "phase": outcome.phase})
    return _report(run, outcome.phase, outcome.message, outcome.status)


def _report(run: BatchRun, phase: str, message: str, status: dict[str, Any]) -> int:
    items, mbs = status.get("items") or {}, status.get("miniBatches") or {}
    lines = [f"BatchJob {run.job} {phase}" + (f": {message}" if message else "")]
    if mbs:
        lines.append(f"  mini-batches: {format_count(mbs.get('total'))} total, "
                     f"{format_count(mbs.get('succeeded'))} succeeded, "
                     f"{format_count(mbs.get('failed'))} failed")  # fmt: skip
    if items:
        lines.append(f"  items:        {format_count(items.get('total'))} total, "
                     f"{format_count(items.get('succeeded'))} succeeded, "
                     f"{format_count(items.get('failed'))} failed")  # fmt: skip
    lines.append(f"  output:       {run.output_uri}")
    if phase == "Succeeded" and run.action == "appendRow":
        lines.append(f"  predictions:  {run.output_uri}/{run.file_name}")
    if items.get("failed"):
        lines.append(f"  failed items: {run.output_uri}/_mlkube/deadletter/")
    lines += ["  " + view_error for view_error in _errors(status)]
    print("\n".join(lines), file=sys.stdout if phase == "Succeeded" else sys.stderr)
    return 0 if phase == "Succeeded" else 1


def _errors(status: dict[str, Any]) -> list[str]:
    from mlkube.cli.batch_progress import format_error

    return [format_error(e) for e in (status.get("lastErrors") or [])[-5:]]


def _local_digest(path: str) -> str:
    """The digest a registered copy of this model would have (part records carry it)."""
    from mlkube.storage import compute_digest

    return compute_digest(Path(os.path.abspath(path)).as_uri()).digest


def _from_file(args: argparse.Namespace) -> tuple[str, dict[str, Any], dict[str, Any] | None, None]:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc
    docs = view.read_manifests(text, args.namespace or "default")
    jobs = [d for d in docs if d["kind"] == KIND_BATCH_JOB]
    if len(jobs) != 1:
        raise CliError(f"{args.file} must hold exactly one BatchJob (found {len(jobs)})")
    job = jobs[0]
    spec = job["spec"]
    endpoints = [d for d in docs if d["kind"] == KIND_BATCH_ENDPOINT
                 and d["metadata"].get("name") == spec["endpoint"]]  # fmt: skip
    deployment = view.deployment_of(endpoints[0], spec.get("deployment")) if endpoints else None
    name = job["metadata"].get("name") or f"{job['metadata']['generateName']}local"
    return str(name), spec, deployment, None


def _from_cluster(
    args: argparse.Namespace,
) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    kube, namespace = connect(args)
    job = get_job(kube, namespace, args.job)
    spec = job["spec"]
    endpoint = get_endpoint(kube, namespace, str(spec["endpoint"]))
    deployment = view.deployment_of(endpoint, spec.get("deployment"))
    if args.model:
        return args.job, spec, deployment, None
    found = read_model(deployment["model"],
                       kube.get(API_VERSION, "Model", deployment["model"], namespace))  # fmt: skip
    if isinstance(found, ModelProblem):
        # Ready means the operator verified the artifact and recorded its digest.
        raise CliError(f"{found.message}: run-local scores only with verified Models "
                       "(or pass --model PATH)")  # fmt: skip
    model = {"name": found.name, "uri": found.uri, "digest": found.digest,
             "framework": found.framework}  # fmt: skip
    return args.job, spec, deployment, model
