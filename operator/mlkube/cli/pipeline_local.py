"""`mlkube pipeline run-local (NAME | -f FILE)`: a Pipeline's steps as local processes.

For debugging a pipeline before (or without) a cluster: the Pipeline comes from a file (no
cluster needed) or from the cluster; its container steps run here in DAG order, one at a time,
each with the pod's programs and env (cli/pipeline_local_run.py), outputs kept in a local
content-addressed store and cache (`--cache-dir`, default ~/.cache/mlkube/pipelines), so a
second run of an unchanged step is a verified cache hit. The steps' commands run on this
machine with your rights: run pipelines you trust.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlkube.api.pipeline import PipelineSpec
from mlkube.api.pipeline_run import CACHE_POLICIES
from mlkube.cli import pipeline_view as view
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.cli.pipeline_dagview import render_dag
from mlkube.cli.pipeline_local_run import LocalPipeline
from mlkube.cli.pipeline_progress import StepTracker
from mlkube.cli.pipeline_runview import render_run
from mlkube.contract import KIND_PIPELINE
from mlkube.localrun.pipeline import LocalStepError
from mlkube.reconcile.pipeline_cache import SETTING, parse_image_digests
from mlkube.reconcile.pipeline_dag import graph_of, topological_order

ModelOf = Callable[[str], tuple[str, str]]


def add_commands(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = verbs.add_parser("run-local", help="run a pipeline's steps as local processes")
    cmd.add_argument("pipeline", nargs="?", help="Pipeline in the cluster (or in -f FILE)")
    cmd.add_argument("-f", "--file", help="YAML with the Pipeline (no cluster needed)")
    cmd.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                     help="a parameter value (repeatable)")  # fmt: skip
    cmd.add_argument("--cache-policy", choices=CACHE_POLICIES, default="Default")
    cmd.add_argument("--cache-dir", help="local artifact store and cache "
                     "(default: ~/.cache/mlkube/pipelines)")  # fmt: skip
    cmd.add_argument("--work-dir", help="step folders and logs (default: a temp dir)")
    cmd.add_argument("--name", help="run name (default: <pipeline>-local-<time>)")
    cmd.add_argument("--cluster", action="store_true",
                     help="run built-in steps against the cluster (not supported yet)")  # fmt: skip
    cmd.set_defaults(func=run_local)
    add_kube_options(cmd)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlkube" / "pipelines"


def _from_file(path: str, name: str | None) -> tuple[str, dict[str, Any]]:
    from mlkube.cli.pipeline import read_text

    docs = [d for d in view.read_manifests(read_text(path), "default")
            if d["kind"] == KIND_PIPELINE]  # fmt: skip
    if name:
        docs = [d for d in docs if d["metadata"]["name"] == name]
    if len(docs) != 1:
        which = f"a Pipeline named {name}" if name else "exactly one Pipeline (or pass its name)"
        raise CliError(f"{path} must hold {which} (found {len(docs)})")
    return str(docs[0]["metadata"]["name"]), docs[0].get("spec") or {}


def _from_cluster(args: argparse.Namespace) -> tuple[str, dict[str, Any], str, ModelOf]:
    from mlkube.builders.model_facts import ModelProblem, read_model
    from mlkube.cli.endpoint_api import connect
    from mlkube.cli.pipeline_api import get_pipeline
    from mlkube.contract import API_VERSION, KIND_MODEL

    kube, namespace = connect(args)
    spec = get_pipeline(kube, namespace, args.pipeline).get("spec") or {}

    def model_of(name: str) -> tuple[str, str]:
        found = read_model(name, kube.get(API_VERSION, KIND_MODEL, name, namespace))
        if isinstance(found, ModelProblem):
            # Ready means the operator verified the artifact and recorded its digest.
            raise LocalStepError(f"{found.message}: run-local reads only verified Models")
        return found.uri, found.digest

    return args.pipeline, spec, namespace, model_of


def run_local(args: argparse.Namespace) -> int:
    if args.cluster:
        raise CliError(
            "--cluster is not supported: run-local runs container steps and evaluate gates here "
            "and skips registerModel, deploy and batch; run the whole pipeline in the cluster "
            "with `mlkube pipeline run NAME --wait`"
        )
    if not args.file and not args.pipeline:
        raise CliError("pass a Pipeline name or -f FILE")
    model_of: ModelOf | None = None
    if args.file:
        name, raw = _from_file(args.file, args.pipeline)
        namespace = args.namespace or "default"
    else:
        name, raw, namespace, model_of = _from_cluster(args)
    spec = view.check(KIND_PIPELINE, raw, name)
    assert isinstance(spec, PipelineSpec)
    try:
        parameters = spec.resolve_parameters(view.parse_parameters(args.param))
        digests = parse_image_digests(os.environ.get(SETTING, ""))
    except ValueError as exc:
        raise CliError(f"Pipeline {name}: {exc}") from exc
    run = args.name or f"{name[:40]}-local-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
    store = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    workdir = Path(args.work_dir or tempfile.mkdtemp(prefix=f"mlkube-pipeline-{name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    graph = graph_of(spec.steps)
    print(f"running Pipeline {name} locally as {run}: {len(spec.steps)} steps in DAG order, one "
          f"at a time (work dir {workdir}, cache {store})", file=sys.stderr)  # fmt: skip
    for line in render_dag(graph):
        print(line, file=sys.stderr)
    tracker = StepTracker(topological_order(graph))

    def show(status: Any) -> None:
        for line in tracker.changes(status):
            print(line, file=sys.stderr, flush=True)

    local = LocalPipeline(spec, run=run, namespace=namespace, parameters=parameters,
                          store=store, workdir=workdir, policy=args.cache_policy, show=show,
                          image_digests=digests, model_of=model_of)  # fmt: skip
    status = local.execute()
    for note in local.notes:
        print(f"note: {note}: the cache key uses the image reference instead (locally the "
              "command runs on this machine, not in the image)", file=sys.stderr)  # fmt: skip
    record = {
        "metadata": {"name": run, "namespace": namespace},
        "spec": {"pipeline": name, "parameters": dict(parameters)},
        "status": status,
    }
    print(render_run(record, datetime.now(UTC), graph))
    print(f"logs: {workdir / 'logs'}", file=sys.stderr)
    return 0 if status["phase"] == "Succeeded" else 1
