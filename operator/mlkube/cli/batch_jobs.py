"""`mlkube batch jobs list|show|logs|cancel|resume|delete`: one BatchJob's record, its pods'
logs, and the two ways to change a job (cancel it; start a new one that resumes it)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any, Final

from mlkube.builders.batch_resume import parse_work
from mlkube.cli import batch_view as view
from mlkube.cli.batch_api import (
    LABEL_COMPLETION_INDEX,
    LABEL_JOB_NAME,
    SCORER,
    create,
    find_endpoint,
    get_job,
    list_jobs,
    patch_job,
    pod_logs,
    score_pods,
)
from mlkube.cli.batch_files import read_output_file
from mlkube.cli.batch_follow import add_wait_option, follow, wait_timeout
from mlkube.cli.endpoint_api import connect
from mlkube.cli.errors import CliError
from mlkube.cli.kube import add_kube_options
from mlkube.cli.model_view import as_list, dump, without_managed_fields
from mlkube.contract import API_VERSION, GROUP, KIND_BATCH_JOB
from mlkube.k8s import ApiError, Kube

FIELD_MANAGER: Final = "mlkube-cli"
STEPS: Final = ("plan", "score", "merge")


def add_commands(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = verbs.add_parser("jobs", help="list, show, follow, cancel and resume BatchJobs")
    jobs = group.add_subparsers(dest="jobs_verb", required=True, metavar="<verb>")

    list_cmd = jobs.add_parser("list", help="list BatchJobs (newest last)")
    list_cmd.add_argument("--endpoint", help="only jobs of this BatchEndpoint")
    list_cmd.add_argument("-A", "--all-namespaces", action="store_true")
    list_cmd.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    list_cmd.set_defaults(func=list_cmd_run)

    show = jobs.add_parser("show", help="counts, progress, output, last errors of a job")
    show.add_argument("job")
    show.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    show.set_defaults(func=show_job)

    logs = jobs.add_parser("logs", help="the scorer log of the pod that ran a mini-batch")
    logs.add_argument("job")
    which = logs.add_mutually_exclusive_group()
    which.add_argument("--mini-batch", type=int, metavar="ID", help="mini-batch id (plan order)")
    which.add_argument("--index", type=int, metavar="I", help="completion index of the score Job")
    logs.add_argument("--step", choices=STEPS, default="score", help="which step's pod")
    logs.set_defaults(func=job_logs)

    cancel = jobs.add_parser("cancel", help="stop a job for good (finished parts stay)")
    cancel.add_argument("job")
    cancel.set_defaults(func=cancel_job)

    resume = jobs.add_parser("resume", help="new job that reruns only what is missing or failed")
    resume.add_argument("job")
    resume.add_argument("--name", help="name of the new job (default: generated)")
    add_wait_option(resume)
    resume.set_defaults(func=resume_job)

    delete = jobs.add_parser("delete", help="delete a job record and its pods (not its output)")
    delete.add_argument("job")
    delete.set_defaults(func=delete_job)

    for verb in (list_cmd, show, logs, cancel, resume, delete):
        add_kube_options(verb)


def list_cmd_run(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    items = list_jobs(kube, None if args.all_namespaces else namespace)
    if args.endpoint:
        items = [o for o in items if (o.get("spec") or {}).get("endpoint") == args.endpoint]
    if args.output == "table":
        print(view.render_table(items, datetime.now(UTC), namespaces=args.all_namespaces))
    else:
        print(dump(as_list([without_managed_fields(o) for o in items]), args.output))
    return 0


def _deployment(kube: Kube, namespace: str, job: dict[str, Any]) -> dict[str, Any] | None:
    endpoint = find_endpoint(kube, namespace, str((job.get("spec") or {}).get("endpoint")))
    name = (job.get("status") or {}).get("deployment") or (job.get("spec") or {}).get("deployment")
    name = name or ((endpoint or {}).get("spec") or {}).get("defaultDeployment")
    return view.find_deployment(endpoint, name)


def show_job(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    job = get_job(kube, namespace, args.job)
    if args.output == "text":
        print(view.render_details(job, datetime.now(UTC), _deployment(kube, namespace, job)))
    else:
        print(dump(without_managed_fields(job), args.output))
    return 0


def cancel_job(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    job = get_job(kube, namespace, args.job)
    phase = (job.get("status") or {}).get("phase")
    if phase in view.TERMINAL:
        print(f"BatchJob {namespace}/{args.job} already {phase}: nothing to cancel")
        return 0
    if (job.get("spec") or {}).get("cancel"):
        print(f"batchjob.{GROUP}/{args.job}: cancel already requested")
        return 0
    patch_job(kube, namespace, args.job, {"spec": {"cancel": True}}, FIELD_MANAGER)
    print(f"batchjob.{GROUP}/{args.job} cancel requested (finished parts stay: "
          f"`mlkube batch jobs resume {args.job}` reruns the rest)")  # fmt: skip
    return 0


def resume_body(source: dict[str, Any], name: str | None) -> dict[str, Any]:
    """A new BatchJob with resumeFrom=source: same endpoint, deployment, input, output and
    overrides (the parts are reused only when model and settings are the same)."""
    spec, status = source.get("spec") or {}, source.get("status") or {}
    new_spec: dict[str, Any] = {"endpoint": spec["endpoint"], "input": spec["input"],
                                "resumeFrom": source["metadata"]["name"]}  # fmt: skip
    deployment = spec.get("deployment") or status.get("deployment")
    if deployment:
        new_spec["deployment"] = deployment
    for key in ("output", "overrides"):
        if spec.get(key):
            new_spec[key] = spec[key]
    meta: dict[str, Any] = {"namespace": source["metadata"]["namespace"]}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{source['metadata']['name'][:50]}-resume-"
    view.check_spec(KIND_BATCH_JOB, new_spec, name or meta["generateName"])
    return {"apiVersion": API_VERSION, "kind": KIND_BATCH_JOB, "metadata": meta, "spec": new_spec}


def resume_job(args: argparse.Namespace) -> int:
    timeout = wait_timeout(args)
    kube, namespace = connect(args)
    source = get_job(kube, namespace, args.job)
    phase = (source.get("status") or {}).get("phase") or "Pending"
    if phase not in view.TERMINAL:
        raise CliError(
            f"BatchJob {namespace}/{args.job} is still {phase}: a job resumes a finished one "
            f"(wait for it, or `mlkube batch jobs cancel {args.job}` first)"
        )
    created = create(kube, resume_body(source, args.name), FIELD_MANAGER)
    name = created["metadata"]["name"]
    print(f"batchjob.{GROUP}/{name} created in namespace {namespace} (resumes {args.job}: "
          "verified parts are reused, the rest runs)", flush=True)  # fmt: skip
    return 0 if args.wait is None else follow(kube, namespace, name, timeout)


def delete_job(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    try:
        deleted = kube.delete(API_VERSION, KIND_BATCH_JOB, args.job, namespace)
    except ApiError as err:
        raise CliError(f"cannot delete BatchJob {namespace}/{args.job}: {err}") from err
    if not deleted:
        raise CliError(f"BatchJob {namespace}/{args.job} not found")
    print(f"batchjob.{GROUP}/{args.job} deleted (its Jobs and pods go with it; the output stays)")
    return 0


# -- logs -----------------------------------------------------------------------------------
def choose_index(job: dict[str, Any], mini_batch: int | None, index: int | None,
                 work: list[int] | None) -> tuple[int, str]:  # fmt: skip
    """(index, why) of the score pod to read."""
    plan = (job.get("status") or {}).get("plan") or {}
    indexes = int(plan.get("indexes") or 0)
    if index is not None:
        if indexes and not 0 <= index < indexes:
            raise CliError(f"--index {index} is outside 0..{indexes - 1}")
        return index, f"index {index}"
    if mini_batch is None:
        errors = (job.get("status") or {}).get("lastErrors") or []
        if indexes == 1:
            return 0, "index 0 (the only one)"
        if not errors:
            raise CliError(f"pass --mini-batch ID or --index I (the job has {indexes} indexes)")
        mini_batch = int(errors[-1]["miniBatch"])
    return view.index_of_mini_batch(mini_batch, plan, work), f"mini-batch {mini_batch}"


def newest_pod(pods: list[dict[str, Any]], index: int | None, job_name: str | None
               ) -> tuple[dict[str, Any] | None, int]:  # fmt: skip
    """The latest attempt's pod of `index` (any pod when None), and how many attempts exist."""

    def meta(pod: dict[str, Any]) -> dict[str, Any]:
        return pod.get("metadata") or {}

    def pod_index(pod: dict[str, Any]) -> str | None:
        m = meta(pod)
        found = (m.get("labels") or {}).get(LABEL_COMPLETION_INDEX)
        return found or (m.get("annotations") or {}).get(LABEL_COMPLETION_INDEX)

    found = [p for p in pods if index is None or pod_index(p) == str(index)]
    current = [p for p in found if (meta(p).get("labels") or {}).get(LABEL_JOB_NAME) == job_name]
    found = current or found
    found.sort(key=lambda p: (str(meta(p).get("creationTimestamp")), str(meta(p).get("name"))))
    return (found[-1] if found else None), len(found)


def job_logs(args: argparse.Namespace) -> int:
    kube, namespace = connect(args)
    job = get_job(kube, namespace, args.job)
    index: int | None = None
    why = f"the {args.step} step"
    if args.step == "score":
        work = resumed_work_list(args, job) if args.mini_batch is not None else None
        index, why = choose_index(job, args.mini_batch, args.index, work)
    pods = score_pods(kube, namespace, args.job, args.step)
    pod, attempts = newest_pod(pods, index, (job.get("status") or {}).get("job"))
    if pod is None:
        out = view.output_uri(job)
        hint = f"; its records stay under {out}/_mlkube/ (dead letters: deadletter/)" if out else ""
        raise CliError(
            f"the pod of {why} of BatchJob {namespace}/{args.job} is gone (deleted with its "
            f"Job, or not started yet){hint}"
        )
    name = pod["metadata"]["name"]
    phase = (pod.get("status") or {}).get("phase", "Unknown")
    print(f"pod {name} ({why}, attempt {attempts}, {phase})", file=sys.stderr, flush=True)
    sys.stdout.write(pod_logs(kube, namespace, name, SCORER))
    return 0


def resumed_work_list(args: argparse.Namespace, job: dict[str, Any]) -> list[int] | None:
    """A resumed job's shards are positions in its work list (docs/batch-endpoints.md §6)."""
    if not (job.get("spec") or {}).get("resumeFrom"):
        return None
    out = view.output_uri(job)
    if out is None:
        raise CliError("the job has no output yet: pass --index")
    data = read_output_file(args, out, f"_mlkube/work/{job['metadata']['name']}.json")
    try:
        return list(parse_work(data).remaining)
    except ValueError as exc:
        raise CliError(f"unreadable work list of the resumed job: {exc}; pass --index") from exc
