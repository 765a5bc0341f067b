"""`python -m mlkube_serving batch plan|score|merge`: the three steps of a BatchJob's pods.

Exit codes are the contract with the Indexed Job's podFailurePolicy (docs/batch-endpoints.md
§3): 0 done, 42 error threshold exceeded, 43 bad plan, config, model or input (neither is
retried by Kubernetes); anything else is a pod failure counted against backoffLimitPerIndex.
A short JSON summary goes to stdout and to the termination message file: $MLKUBE_TERMINATION_LOG
when set, else /dev/termination-log when it exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import Any

from mlkube.builders.batch_plan import PlanError, plan_digest, serialize_plan
from mlkube.storage.errors import StorageError
from mlkube_serving.batch.config import EXIT_BAD_INPUT, ScoreConfig

TERMINATION_LOG = "/dev/termination-log"
# Where a pod has no /dev/termination-log (the dev pod executor names a file per container).
TERMINATION_ENV = "MLKUBE_TERMINATION_LOG"
PLAN = "_mlkube/plan.json"
# The plan summary again, in the output: the operator reads it when the plan pod (and its
# termination message) is gone.
PLAN_SUMMARY = "_mlkube/plan-summary.json"
MAX_SUMMARY = 4096  # the kubelet keeps at most 4 KiB of a termination message
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived: the pod is being deleted (cancel, suspend, FailJob, eviction)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _stop_on_sigterm() -> None:
    """In a container the scorer is PID 1, and the kernel does not deliver a signal to a PID 1
    that has no handler for it: without this, SIGTERM is ignored and every deleted batch pod
    (a cancelled or suspended job, the other indexes of a Job its podFailurePolicy failed)
    lives on for the whole grace period until the kubelet's SIGKILL. Unwinding kills the
    workers (the runner's cleanup); a part is never half-written (atomic commits)."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def _fit(body: dict[str, Any]) -> str:
    """One JSON line that fits the 4 KiB termination message: error texts are shortened
    (then dropped but the newest) before anything else, so it always stays valid JSON."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    errors = body.get("lastErrors")
    if len(text.encode()) <= MAX_SUMMARY or not isinstance(errors, list):
        return text
    for keep, chars in ((len(errors), 256), (1, 256), (1, 64), (0, 0)):
        cut = [{**e, "message": str(e.get("message", ""))[:chars]} for e in errors[-keep:]]
        text = json.dumps({**body, "lastErrors": cut if keep else []},
                          sort_keys=True, separators=(",", ":"))  # fmt: skip
        if len(text.encode()) <= MAX_SUMMARY:
            break
    return text


def _summary(body: dict[str, Any], path: str) -> None:
    text = _fit(body)
    print(text)
    if path and (os.path.exists(path) or path == os.environ.get(TERMINATION_ENV)):
        with open(path, "w") as out:
            out.write(text[:MAX_SUMMARY])


def _functions(step: argparse.ArgumentParser) -> None:
    """The scoring script's function names (BatchEntrypoint initFunction/runFunction)."""
    step.add_argument("--init-function", default="init", help="called once per worker")
    step.add_argument("--run-function", default="run", help="called per mini-batch")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlkube_serving batch")
    parser.add_argument(
        "--termination-log", default=os.environ.get(TERMINATION_ENV) or TERMINATION_LOG
    )
    sub = parser.add_subparsers(dest="step", required=True)
    plan = sub.add_parser("plan", help="list the input once and write <output>/_mlkube/plan.json")
    plan.add_argument("--input", required=True)
    plan.add_argument("--output", required=True)
    plan.add_argument("--mini-batch-size", default="10")
    plan.add_argument("--format", default="auto")
    score = sub.add_parser("score", help="score one index's shard of the plan")
    score.add_argument("--output", required=True)
    score.add_argument("--model", required=True, help="local model path (after the initializer)")
    score.add_argument("--framework")
    score.add_argument("--entrypoint", help="Azure ML batch scoring script")
    _functions(score)
    score.add_argument("--output-format", default="csv", choices=["csv", "jsonl", "parquet"])
    score.add_argument("--index", type=int, default=int(os.environ.get("JOB_COMPLETION_INDEX", 0)))
    score.add_argument("--indexes", type=int, default=1)
    score.add_argument("--plan-digest")
    score.add_argument("--work", help="work list (resume), relative to the output")
    score.add_argument("--model-digest", default="")
    score.add_argument("--concurrency", type=int, default=1)
    score.add_argument("--timeout", type=float, default=30.0)
    score.add_argument("--max-retries", type=int, default=3)
    score.add_argument("--error-threshold", type=int, default=-1)
    score.add_argument("--chunk-rows", type=int, default=65_536)
    score.add_argument("--init-timeout", type=float, default=600.0)
    work = sub.add_parser("work", help="resume: write the list of mini-batches still to run")
    work.add_argument("--output", required=True)
    work.add_argument("--job", required=True, help="the resuming BatchJob's name")
    work.add_argument("--model-digest", default="")
    work.add_argument("--framework")
    work.add_argument("--entrypoint")
    _functions(work)
    work.add_argument("--output-format", default="csv", choices=["csv", "jsonl", "parquet"])
    merge = sub.add_parser("merge", help="merge verified parts into the output file")
    merge.add_argument("--output", required=True)
    merge.add_argument("--file-name", default="predictions.csv")
    merge.add_argument("--output-format", default="csv", choices=["csv", "jsonl", "parquet"])
    merge.add_argument("--action", default="appendRow", choices=["appendRow", "summaryOnly"])
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("MLKUBE_LOG_LEVEL", "INFO").upper())
    _stop_on_sigterm()
    try:
        return _run(args)
    except Terminated:
        logging.getLogger(__name__).warning("terminated (SIGTERM): stopping")
        return EXIT_TERMINATED
    except (PlanError, StorageError, ValueError) as exc:
        _summary({"error": f"{type(exc).__name__}: {exc}"[:2048]}, args.termination_log)
        return EXIT_BAD_INPUT


def _run(args: argparse.Namespace) -> int:
    if args.step == "plan":
        from mlkube_serving.batch.listing import plan_input
        from mlkube_serving.batch.store import Store

        plan = plan_input(args.input, args.mini_batch_size, args.format)
        data = serialize_plan(plan)
        sink = Store.open(args.output)
        # Create-only in effect: a rerun with the same input writes the same bytes; another
        # plan in this output would orphan its parts (the input changed, or another job's).
        if sink.exists(PLAN) and (old := plan_digest(sink.read_bytes(PLAN))) != plan_digest(data):
            raise PlanError(
                f"{args.output} already holds another plan ({old}): the input or mini-batch "
                "size changed since it was planned; use a new output (or resumeFrom)"
            )
        sink.write_atomic(PLAN, data)
        body = {
            "digest": plan_digest(data),
            "miniBatches": len(plan.mini_batches),
            "items": plan.items,
            "itemsEstimated": plan.items_estimated,
            "bytes": len(data),
        }
        sink.write_atomic(PLAN_SUMMARY, json.dumps(body, sort_keys=True).encode())
        _summary(body, args.termination_log)
        return 0
    if args.step == "merge":
        from mlkube_serving.batch.merge import merge

        manifest = merge(args.output, args.file_name, args.output_format, args.action)
        manifest.pop("parts", None)
        _summary(manifest, args.termination_log)
        return 0
    if args.step == "work":
        from mlkube_serving.batch.resume import write_work

        settings = ScoreConfig(
            output_uri=args.output,
            model_path="",
            framework=args.framework,
            entrypoint=args.entrypoint,
            init_function=args.init_function,
            run_function=args.run_function,
            output_format=args.output_format,
            model_digest=args.model_digest,
        )
        _summary(write_work(settings, args.job), args.termination_log)
        return 0
    from mlkube_serving.batch.runner import run_index

    config = ScoreConfig(
        output_uri=args.output,
        model_path=args.model,
        framework=args.framework,
        entrypoint=args.entrypoint,
        init_function=args.init_function,
        run_function=args.run_function,
        output_format=args.output_format,
        index=args.index,
        indexes=args.indexes,
        plan_digest=args.plan_digest,
        model_digest=args.model_digest,
        concurrency=args.concurrency,
        timeout_seconds=args.timeout,
        max_retries=args.max_retries,
        error_threshold=args.error_threshold,
        chunk_rows=args.chunk_rows,
        init_timeout_seconds=args.init_timeout,
    )
    code, summary = run_index(config, args.work)
    _summary(summary, args.termination_log)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
