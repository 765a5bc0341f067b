"""Check every declared output before uploading any: a step with one missing or malformed output
uploads nothing and fails with one message naming every problem.

Parameter outputs are UTF-8 files of at most 1 KiB (one trailing newline dropped: `echo 0.1 >
$MLKUBE_OUTPUT_LR` gives "0.1"); metrics outputs are JSON objects name -> finite number.
"""

from __future__ import annotations

import json
import os

from mlkube.builders.pipeline_contract import ContractError, StepManifest, StepPaths
from mlkube.builders.pipeline_summary import (
    MAX_VALUE_BYTES,
    StepSummary,
    SummaryOutput,
    check_metrics,
)
from mlkube_serving.step.errors import StepError
from mlkube_serving.step.files import is_dir, list_tree, open_dir, open_regular, read_small

MAX_METRICS_BYTES = 64 * 1024


def collect(manifest: StepManifest, paths: StepPaths) -> dict[str, SummaryOutput]:
    """Parameter and metrics outputs by name, read and checked; artifact outputs are checked
    (present, not empty, no links) but not read. Raises StepError naming every bad output."""
    found: dict[str, SummaryOutput] = {}
    problems: list[str] = []
    for output in manifest.outputs:
        path, what = paths.output(output.name), f"output {output.name}"
        try:
            if output.type == "artifact":
                _check_artifact(path, what)
            elif output.type == "parameter":
                found[output.name] = SummaryOutput(
                    output.name, "parameter", value=_parameter(path, what)
                )
            else:
                found[output.name] = SummaryOutput(
                    output.name, "metrics", metrics=_metrics(path, what)
                )
        except StepError as exc:
            problems.append(str(exc))
    try:
        StepSummary(0, tuple(found.values()))  # one metric name in two metrics outputs
    except ContractError as exc:
        problems.append(str(exc))
    if problems:
        raise StepError("; ".join(problems))
    return found


def _check_artifact(path: str, what: str) -> None:
    if not is_dir(path):
        os.close(open_regular(path, what))  # a single-file artifact is fine
        return
    root = open_dir(path, what)
    try:
        if not list_tree(root, what):
            raise StepError(f"{what} is an empty folder; write at least one file")
    finally:
        os.close(root)


def _parameter(path: str, what: str) -> str:
    data = read_small(path, MAX_VALUE_BYTES + 2, what)  # + room for the newline dropped
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if len(data) > MAX_VALUE_BYTES:
        raise StepError(f"{what} is larger than {MAX_VALUE_BYTES} bytes (a parameter is <= 1 KiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StepError(f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc


def _metrics(path: str, what: str) -> dict[str, float]:
    data = read_small(path, MAX_METRICS_BYTES, what)
    try:
        body = json.loads(data, parse_constant=_no_constant)
    except ValueError as exc:
        raise StepError(f"{what} is not valid JSON: {exc}") from exc
    try:
        return check_metrics(body, what.removeprefix("output "))
    except ContractError as exc:
        raise StepError(str(exc)) from exc


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")
