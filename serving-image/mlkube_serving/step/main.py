"""`python -m mlkube_serving step inputs|outputs`: argument parsing and the termination message.

Both read the manifest from MLKUBE_STEP and the volume root from MLKUBE_STEP_ROOT (default
/mlkube; the dev pod executor and the process tests point it elsewhere). The termination
message goes to $MLKUBE_TERMINATION_LOG when set, else /dev/termination-log when it exists (the
batch scorer's rule). `inputs` writes `{"inputs": [...]}` on success and `error: <message>`
on failure; `outputs` always writes a step summary (pipeline_summary), fitted to 4 KiB.
Nothing here needs Kubernetes API credentials: only the artifact store's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from mlkube.builders.pipeline_contract import (
    ENV_STEP,
    ENV_STEP_ROOT,
    ENV_TERMINATION_LOG,
    STEP_ROOT,
    ContractError,
    StepManifest,
    StepPaths,
    parse_manifest,
)
from mlkube.builders.pipeline_summary import MAX_TERMINATION_BYTES, StepSummary, cut, fit_summary
from mlkube_serving.step.errors import StepError

TERMINATION_LOG = "/dev/termination-log"
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlkube_serving step",
        description="The mlkube containers of a pipeline step pod (docs/pipelines.md §2).",
    )
    parser.add_argument("command", choices=("inputs", "outputs"))
    parser.add_argument(
        "--root", default=os.environ.get(ENV_STEP_ROOT) or STEP_ROOT,
        help=f"volume root with inputs/, outputs/, run/ (env {ENV_STEP_ROOT})",
    )  # fmt: skip
    parser.add_argument(
        "--termination-log", default=os.environ.get(ENV_TERMINATION_LOG) or TERMINATION_LOG,
        help=f"termination message file (env {ENV_TERMINATION_LOG})",
    )  # fmt: skip
    parser.add_argument(
        "--poll-interval", type=float, default=0.2, help="outputs: seconds between checks of main"
    )
    return parser


def terminate_with(text: str, path: str) -> None:
    """The termination message: the operator reads it from the pod status."""
    if path and (os.path.exists(path) or path == os.environ.get(ENV_TERMINATION_LOG)):
        try:
            with open(path, "w", encoding="utf-8") as out:
                out.write(cut(text, MAX_TERMINATION_BYTES))
        except OSError:
            pass  # best effort: the text is on stdout/stderr as well


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = StepPaths(args.root.rstrip("/") or "/")
    try:
        manifest = parse_manifest(os.environ.get(ENV_STEP, ""))
    except ContractError as exc:
        return _fail(args, f"bad {ENV_STEP}: {exc}", EXIT_USAGE)
    if args.command == "inputs":
        return _inputs(manifest, paths, args.termination_log)
    return _outputs(manifest, paths, args)


def _inputs(manifest: StepManifest, paths: StepPaths, log: str) -> int:
    from mlkube_serving.step.inputs import prepare

    try:
        fetched = prepare(manifest, paths)
    except StepError as exc:
        line = f"error: {exc}"
        print(line, file=sys.stderr)
        terminate_with(line, log)
        return EXIT_FAILED
    body = {"inputs": [{"name": f.name, "digest": f.digest, "size": f.size,
                        "fileCount": f.file_count} for f in fetched]}  # fmt: skip
    text = json.dumps(body, separators=(",", ":"))
    print(text)
    if len(text) > MAX_TERMINATION_BYTES:  # 32 inputs with long names: stay valid JSON
        text = json.dumps({"inputCount": len(fetched), "truncated": True})
    terminate_with(text, log)
    return 0


def _outputs(manifest: StepManifest, paths: StepPaths, args: argparse.Namespace) -> int:
    from mlkube_serving.step.outputs import run_outputs

    summary, code = run_outputs(manifest, paths, args.poll_interval)
    text = fit_summary(summary)
    print(text)
    if summary.error:
        print(f"error: {summary.error}", file=sys.stderr)
    terminate_with(text, args.termination_log)
    return code


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    if args.command == "outputs":
        terminate_with(
            fit_summary(StepSummary(None, error=cut(message, 1024))), args.termination_log
        )
    else:
        terminate_with(f"error: {message}", args.termination_log)
    return code
