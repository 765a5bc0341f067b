"""`mlkube pipeline runs list|show|logs|cancel|resume` and the `--wait` follower.

A run is a record: cancelling sets `spec.cancel` (the only field that may change); running part
of it again is a new run with `resumeFrom` (+ `rerunSteps`), whose Succeeded steps are reused
after their outputs are verified. Exit codes of `--wait` as for batch jobs: 0 Succeeded,
1 Failed or Cancelled (the failing step's message on stderr), 124 still running after SECONDS.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from mlkube.api.pipeline_run import FINISHED_RUN_PHASES
from mlkube.builders.pipeline_step import MAIN_CONTAINER
from mlkube.cli import pipeline_view as view
from mlkube.cli.batch_follow import EXIT_FAILED, EXIT_TIMEOUT, add_wait_option, wait_timeout
from mlkube.cli.endpoint_api import connect
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.cli.model_view import as_list, dump, without_managed_fields
from mlkube.cli.pipeline_api import (
    FIELD_MANAGER,
    create,
    get_pipeline,
    get_run,
    list_objects,
    patch_run,
    pod_logs,
    run_spec_snapshot,
    step_pods,
)
from mlkube.cli.pipeline_progress import StepTracker, WaitTimeout, failure_lines, wait_for_run
from mlkube.cli.pipeline_runview import render_run, render_runs
from mlkube.contract import GROUP, KIND_PIPELINE_RUN, LABEL_PIPELINE_STEP
from mlkube.k8s import Kube
from mlkube.reconcile.pipeline_dag import DagError, Graph, topological_order

LOG_POLL: Final = 2.0


def add_commands(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = verbs.add_parser("runs", help="list, show, logs, cancel and resume PipelineRuns")
    runs = group.add_subparsers(dest="runs_verb", required=True, metavar="<verb>")

    list_cmd = runs.add_parser("list", help="list PipelineRuns (newest last)")
    list_cmd.add_argument("pipeline", nargs="?", help="only runs of this Pipeline")
    list_cmd.add_argument("-A", "--all-namespaces", action="store_true")
    list_cmd.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    list_cmd.set_defaults(func=list_runs)

    show = runs.add_parser("show", help="steps (phase, cache, outputs, metrics) and the DAG")
    show.add_argument("run")
    show.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    show.set_defaults(func=show_run)

    logs = runs.add_parser("logs", help="the main container log of the run's step pods")
    logs.add_argument("run")
    logs.add_argument("--step", help="only this step (default: every step, in DAG order)")
    logs.add_argument("-f", "--follow", action="store_true", help="until the run finishes")
    logs.set_defaults(func=run_logs)

    cancel = runs.add_parser("cancel", help="stop a run for good (running Jobs are deleted)")
    cancel.add_argument("run")
    cancel.set_defaults(func=cancel_run)

    resume = runs.add_parser("resume", help="new run reusing a finished run's succeeded steps")
    resume.add_argument("run")
    resume.add_argument("--rerun", action="append", metavar="STEP", default=[],
                        help="run this step (and its dependents) again (repeatable)")  # fmt: skip
    resume.add_argument("--name", help="name of the new run (default: generated)")
    add_wait_option(resume)
    resume.set_defaults(func=resume_run)

    for verb in (list_cmd, show, logs, cancel, resume):
        add_kube_options(verb)


def graph_of_run(kube: Kube, run: Mapping[str, Any]) -> Graph | None:
    """The DAG the run executes: its snapshot, else (not started yet) the live Pipeline."""
    meta = run["metadata"]
    spec = run_spec_snapshot(kube, meta["namespace"], meta["name"])
    if spec is None:
        try:
            spec = get_pipeline(kube, meta["namespace"], run["spec"]["pipeline"]).get("spec")
        except CliError:
            return None
    return view.dag_of(spec)


def follow(kube: Kube, namespace: str, name: str, timeout: float | None,
           graph: Graph | None) -> int:  # fmt: skip
    """Print each step change until the run ends: 0 Succeeded, 1 Failed/Cancelled, 124."""
    order: list[str] = []
    if graph is not None:
        try:
            order = topological_order(graph)
        except DagError:
            order = []
    tracker = StepTracker(order)

    def show(status: Mapping[str, Any]) -> None:
        for line in tracker.changes(status):
            print(line, file=sys.stderr, flush=True)

    try:
        run = wait_for_run(lambda: get_run(kube, namespace, name), show, timeout)
    except WaitTimeout as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_TIMEOUT
    status = run.get("status") or {}
    if status.get("phase") == "Succeeded":
        models = status.get("producedModels") or []
        print(f"PipelineRun {name} Succeeded ({status.get('progress') or '-'} steps)"
              + (f"; produced models: {', '.join(models)}" if models else ""))  # fmt: skip
        return 0
    print("\n".join(failure_lines(run)), file=sys.stderr)
    return EXIT_FAILED


def list_runs(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    items = list_objects(kube, KIND_PIPELINE_RUN, None if args.all_namespaces else namespace)
    if args.pipeline:
        items = [o for o in items if (o.get("spec") or {}).get("pipeline") == args.pipeline]
    if args.output == "table":
        print(render_runs(items, datetime.now(UTC), namespaces=args.all_namespaces))
    else:
        print(dump(as_list([without_managed_fields(o) for o in items]), args.output))
    return 0


def show_run(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    run = get_run(kube, namespace, args.run)
    if args.output == "text":
        print(render_run(run, datetime.now(UTC), graph_of_run(kube, run)))
    else:
        print(dump(without_managed_fields(run), args.output))
    return 0


def cancel_run(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    run = get_run(kube, namespace, args.run)
    phase = (run.get("status") or {}).get("phase")
    if phase in FINISHED_RUN_PHASES:
        print(f"PipelineRun {namespace}/{args.run} already {phase}: nothing to cancel")
        return 0
    if (run.get("spec") or {}).get("cancel"):
        print(f"pipelinerun.{GROUP}/{args.run}: cancel already requested")
        return 0
    patch_run(kube, namespace, args.run, {"spec": {"cancel": True}})
    print(f"pipelinerun.{GROUP}/{args.run} cancel requested (succeeded steps stay: "
          f"`mlkube pipeline runs resume {args.run}` reruns the rest)")  # fmt: skip
    return 0


def resume_run(args: argparse.Namespace) -> int:
    timeout = wait_timeout(args)
    kube, namespace = connect(args)
    source = get_run(kube, namespace, args.run)
    phase = (source.get("status") or {}).get("phase") or "Pending"
    if phase not in FINISHED_RUN_PHASES:
        raise CliError(
            f"PipelineRun {namespace}/{args.run} is still {phase}: a run resumes a finished one "
            f"(wait for it, or `mlkube pipeline runs cancel {args.run}` first)"
        )
    graph = graph_of_run(kube, source)
    unknown = sorted(set(args.rerun) - set(graph or args.rerun))
    if unknown:
        raise CliError(f"--rerun: no step {', '.join(unknown)} in the run's pipeline")
    spec = source.get("spec") or {}
    body = view.build_run(
        str(spec["pipeline"]), namespace, parameters=spec.get("parameters") or {},
        name=args.name, cache_policy=spec.get("cachePolicy") or "Default",
        resume_from=args.run, rerun_steps=args.rerun,
    )  # fmt: skip
    created = create(kube, body, FIELD_MANAGER)
    name = created["metadata"]["name"]
    print(f"pipelinerun.{GROUP}/{name} created in namespace {namespace} (resumes {args.run}: "
          "its verified succeeded steps are reused, the rest runs)", flush=True)  # fmt: skip
    return 0 if args.wait is None else follow(kube, namespace, name, timeout, graph)


# -- logs -----------------------------------------------------------------------------------
def newest_pods(pods: list[dict[str, Any]], order: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(step, the latest attempt's pod) per step, steps in DAG order."""
    by_step: dict[str, dict[str, Any]] = {}
    for pod in sorted(pods, key=lambda p: (str(p["metadata"].get("creationTimestamp")),
                                           str(p["metadata"].get("name")))):  # fmt: skip
        step = (pod["metadata"].get("labels") or {}).get(LABEL_PIPELINE_STEP)
        if step:
            by_step[str(step)] = pod
    rank = {n: i for i, n in enumerate(order)}
    return sorted(by_step.items(), key=lambda kv: (rank.get(kv[0], 1 << 30), kv[0]))


def _order(kube: Kube, run: Mapping[str, Any]) -> list[str]:
    graph = graph_of_run(kube, run)
    try:
        return topological_order(graph) if graph is not None else []
    except DagError:
        return []


def run_logs(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    run = get_run(kube, namespace, args.run)
    order = _order(kube, run)
    if args.step and order and args.step not in order:
        raise CliError(f"no step {args.step} in the pipeline of run {args.run}")

    def fetch() -> list[dict[str, Any]]:
        return step_pods(kube, namespace, args.run, args.step)

    if not args.follow:
        pods = newest_pods(fetch(), order)
        if not pods:
            which = f"step {args.step}" if args.step else "any step"
            raise CliError(f"no pod of {which} of PipelineRun {namespace}/{args.run} (not "
                           "started, served from the cache, or deleted with its Job)")  # fmt: skip
        for step, pod in pods:
            _header(step, pod)
            sys.stdout.write(pod_logs(kube, namespace, pod["metadata"]["name"], MAIN_CONTAINER))
        return 0

    def finished() -> bool:
        status = get_run(kube, namespace, args.run).get("status") or {}
        return status.get("phase") in FINISHED_RUN_PHASES

    def read(pod: str) -> str:
        return pod_logs(kube, namespace, pod, MAIN_CONTAINER)

    follow_logs(fetch, read, finished, order)
    return 0


def _header(step: str, pod: Mapping[str, Any]) -> None:
    phase = (pod.get("status") or {}).get("phase", "Unknown")
    print(f"==> step {step}: pod {pod['metadata']['name']} ({phase}) <==", file=sys.stderr,
          flush=True)  # fmt: skip


def follow_logs(
    fetch: Callable[[], list[dict[str, Any]]],
    read: Callable[[str], str],
    finished: Callable[[], bool],
    order: list[str],
    *,
    poll: float = LOG_POLL,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print each step pod's log as it grows (polled: the log endpoint is read again and the
    new tail printed) until the run is finished and every pod's log was read after its end."""
    shown: dict[str, int] = {}
    while True:
        done = finished()  # before reading: the last read then sees every line
        for step, pod in newest_pods(fetch(), order):
            name = pod["metadata"]["name"]
            try:
                text = read(name)
            except CliError:
                continue  # main has not started yet (the inputs container is still running)
            if name not in shown:
                _header(step, pod)
                shown[name] = 0
            sys.stdout.write(text[shown[name] :])
            sys.stdout.flush()
            shown[name] = len(text)
        if done:
            return
        sleep(poll)
