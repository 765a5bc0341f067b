"""One attempt of a container step as the pod's three processes (`pipeline run-local`).

In the pod's order: `python -m mlkube_serving step inputs` (download, verify, create the output
folders), the user's command under the contract's wrapper (it writes main.pid and exit-code
under MLKUBE_STEP_ROOT/run), then `step outputs` (upload with digests, write the summary to
`<prefix>/_mlkube/summary.json` and the termination log). The data plane is never imported:
every piece is its own process, each logging to `<work-dir>/logs/<step>-a<N>-<container>.log`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlkube.builders import pipeline_contract as pc
from mlkube.builders.pipeline_json import ContractError
from mlkube.builders.pipeline_summary import parse_summary
from mlkube.cli.pipeline_local_cache import uri_path
from mlkube.localrun.pipeline import LocalStep, step_program

EXIT_TIMEOUT = 124


@dataclass
class AttemptResult:
    error: str | None = None  # None: succeeded
    outputs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def run_attempt(local: LocalStep, workdir: Path, timeout: float | None) -> AttemptResult:
    """The three processes of one attempt, in order; the first failure ends it."""
    root = Path(local.env[pc.ENV_STEP_ROOT])
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    paths = pc.StepPaths(str(root))
    for volume in (paths.inputs, paths.outputs, paths.run):  # the pod's emptyDirs
        os.makedirs(volume, exist_ok=True)
    tag = f"{local.name}-a{local.manifest.attempt}"
    term = root / "termination-log"
    env = {**os.environ, pc.ENV_STEP: local.manifest.to_json(), pc.ENV_STEP_ROOT: str(root),
           pc.ENV_TERMINATION_LOG: str(term)}  # fmt: skip
    if run_process(step_program("inputs"), env, logs / f"{tag}-inputs.log") != 0:
        return AttemptResult("inputs: " + read_or_tail(term, logs / f"{tag}-inputs.log"))
    # `python` in a step command is this interpreter (as the dev pod executor maps it).
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    main_env = {**os.environ, "PATH": path, **local.env}
    code = run_process(local.main_argv, main_env, logs / f"{tag}-main.log", timeout)
    if code != 0:
        last = tail(logs / f"{tag}-main.log")
        return AttemptResult(f"main exited {code}" + (f": {last}" if last else ""))
    term.unlink(missing_ok=True)
    if run_process(step_program("outputs"), env, logs / f"{tag}-outputs.log") != 0:
        return AttemptResult("outputs: " + read_or_tail(term, logs / f"{tag}-outputs.log"))
    return collect(local, term)


def collect(local: LocalStep, term: Path) -> AttemptResult:
    """The summary as status outputs and metrics (the stored copy: it is never cut)."""
    stored = uri_path(pc.summary_uri(local.manifest.prefix))
    text = stored.read_text(encoding="utf-8") if stored.is_file() else read_or_tail(term, term)
    try:
        summary = parse_summary(text)
    except ContractError as err:
        return AttemptResult(f"unreadable step summary: {err}")
    if not summary.succeeded:
        return AttemptResult(summary.error or "the step reported no success")
    outputs = []
    for out in summary.outputs:
        body = {"name": out.name, "type": out.type, "uri": out.uri, "digest": out.digest,
                "value": out.value, "size": out.size}  # fmt: skip
        outputs.append({k: v for k, v in body.items() if v is not None})
    return AttemptResult(None, outputs, dict(summary.metrics))


def run_process(
    argv: list[str], env: Mapping[str, str], log: Path, timeout: float | None = None
) -> int:
    """Run to the end in its own session (a timeout or Ctrl-C stops its children too)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            out.write(f"\nmlkube: killed after the step timeout ({timeout:g}s)\n".encode())
            return EXIT_TIMEOUT
        except BaseException:
            _kill(proc)
            raise


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line for line in text.strip().splitlines()[-lines:])


def read_or_tail(first: Path, fallback: Path) -> str:
    try:
        text = first.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or tail(fallback)
