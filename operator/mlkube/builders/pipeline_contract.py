"""The pipeline step-pod contract: paths, env names, the main wrapper and the step manifest.

Pure (json/re only) because both sides import it: the operator's Job builder writes the manifest
(env MLKUBE_STEP) and wraps the user's command; `python -m mlkube_serving step inputs|outputs`
in the serving image reads them. The summary the `outputs` container writes back is in
builders/pipeline_summary.py. docs/pipelines.md §2 describes the pod; a field renamed here must
be renamed there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from mlkube.builders.pipeline_json import ContractError as ContractError
from mlkube.builders.pipeline_json import json_fields, json_list, parse_json_fields, text_field

STEP_ROOT: Final = "/mlkube"  # volumes: <root>/inputs, <root>/outputs, <root>/run
ENV_STEP: Final = "MLKUBE_STEP"  # the manifest (JSON), for the two mlkube containers
ENV_STEP_ROOT: Final = "MLKUBE_STEP_ROOT"  # overrides STEP_ROOT (dev executor, process tests)
ENV_INPUTS: Final = "MLKUBE_INPUTS"  # for `main`: <root>/inputs
ENV_OUTPUTS: Final = "MLKUBE_OUTPUTS"  # for `main`: <root>/outputs
ENV_TERMINATION_LOG: Final = "MLKUBE_TERMINATION_LOG"  # as the batch scorer
PID_FILE: Final = "main.pid"  # in <root>/run: the wrapper's pid
EXIT_CODE_FILE: Final = "exit-code"  # in <root>/run: the user's command's exit code
OUTPUTS_FOLDER: Final = "outputs"  # <prefix>/outputs/<name>: uploaded artifact outputs
SUMMARY_PATH: Final = "_mlkube/summary.json"  # <prefix>/_mlkube/summary.json
WRAPPER_NAME: Final = "mlkube-step"  # $0 of the wrapper shell

# The `main` container's script: `/bin/sh -c WRAPPER mlkube-step <command...> <args...>` (in the
# pod spec with every `$` doubled: `kube_escape`).
# Shell builtins only (echo, kill, wait, trap, redirections): any image with a POSIX /bin/sh runs
# it. `echo` is one write(2), so a reader sees an empty or a whole file, never a partial number.
# The command runs as a child (not exec: the exit code must be written after it ends) and the
# shell forwards SIGTERM/SIGINT to it, so deleting the pod stops the user's code as it would
# without the wrapper (the kubelet signals only the container's first process). A trapped
# signal interrupts `wait`; the loop waits again until the child is really gone. If the shell
# itself dies (SIGKILL) no exit-code appears and `outputs` sees main.pid name a gone process.
WRAPPER: Final = (
    'run="${MLKUBE_STEP_ROOT:-/mlkube}/run"\n'
    'echo "$$" > "$run/main.pid" || {\n'
    '  echo "mlkube-step: cannot write $run/main.pid" >&2\n'
    "  exit 1\n"
    "}\n"
    '"$@" &\n'
    "child=$!\n"
    """trap 'kill -TERM "$child" 2>/dev/null' TERM\n"""
    """trap 'kill -INT "$child" 2>/dev/null' INT\n"""
    "while :; do\n"
    '  wait "$child"\n'
    "  code=$?\n"
    '  kill -0 "$child" 2>/dev/null || break\n'
    "done\n"
    'echo "$code" > "$run/exit-code"\n'
    'exit "$code"\n'
)

OutputType = Literal["artifact", "parameter", "metrics"]
OUTPUT_TYPES: Final[tuple[OutputType, ...]] = ("artifact", "parameter", "metrics")
EnvKind = Literal["input", "output", "param"]
_ENV_PREFIXES: Final[dict[str, str]] = {
    "input": "MLKUBE_INPUT_",
    "output": "MLKUBE_OUTPUT_",
    "param": "MLKUBE_PARAM_",
}
# Input, output and parameter names become folder names and env names: api/pipeline_step.py's
# IDENT_PATTERN (no `.`, `/` or leading `-`), at most 63 characters. Kept here too so the
# serving image need not import the API models; a unit test keeps the two equal.
NAME_PATTERN: Final = r"^[A-Za-z_][-A-Za-z0-9_]*$"
MAX_NAME: Final = 63
_NAME_RE: Final = re.compile(NAME_PATTERN)
_DIGEST_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_MANIFEST_BYTES: Final = 256 * 1024


def step_env_name(kind: EnvKind, name: str) -> str:
    """MLKUBE_INPUT_<NAME> / MLKUBE_OUTPUT_<NAME> / MLKUBE_PARAM_<NAME>: NAME upper-cased,
    `-` -> `_` (so `train-data` and `train_data` collide: `check_env_names` refuses that)."""
    if kind not in _ENV_PREFIXES:
        raise ContractError(f"unknown env kind {kind!r}")
    check_name(name, kind)
    return _ENV_PREFIXES[kind] + name.upper().replace("-", "_")


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not _NAME_RE.fullmatch(name):
        raise ContractError(
            f"{what} {name!r} is not a valid name (letters, digits, '-', '_', at most "
            f"{MAX_NAME}; starting with a letter or '_')"
        )
    return name


def check_env_names(kind: EnvKind, names: Iterable[str]) -> None:
    """Refuse two names that map to the same env variable (case, `-` vs `_`)."""
    seen: dict[str, str] = {}
    for name in names:
        env = step_env_name(kind, name)
        if env in seen:
            raise ContractError(f"{kind} names {seen[env]!r} and {name!r} both map to {env}")
        seen[env] = name


def kube_escape(text: str) -> str:
    """`text` as written in a container's command or args so that it reaches the process
    unchanged: the kubelet expands `$(VAR)` there and turns `$$` into `$`."""
    return text.replace("$", "$$")


def main_command(command: Sequence[str], args: Sequence[str] = ()) -> list[str]:
    """The `main` process's argv: the wrapper around the user's command and args. In the pod
    spec the script (argv[2]) goes through `kube_escape` (builders/pipeline_step.py does), and
    the user's command and args stay as written (their `$(VAR)` expand as in any pod)."""
    if not command:
        raise ContractError("a container step needs a command")
    return ["/bin/sh", "-c", WRAPPER, WRAPPER_NAME, *command, *args]


def attempt_prefix(store: str, namespace: str, run: str, step: str, attempt: int) -> str:
    """Where one attempt's outputs and summary go: <store>/<ns>/pipelineruns/<run>/<step>/aN."""
    return f"{store.rstrip('/')}/{namespace}/pipelineruns/{run}/{step}/a{attempt}"


def output_uri(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{OUTPUTS_FOLDER}/{name}"


def summary_uri(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/{SUMMARY_PATH}"


@dataclass(frozen=True)
class StepPaths:
    """The three volumes of a step pod under one root (STEP_ROOT in a pod)."""

    root: str = STEP_ROOT

    @property
    def inputs(self) -> str:
        return f"{self.root}/inputs"

    @property
    def outputs(self) -> str:
        return f"{self.root}/outputs"

    @property
    def run(self) -> str:
        return f"{self.root}/run"

    @property
    def pid_file(self) -> str:
        return f"{self.run}/{PID_FILE}"

    @property
    def exit_code_file(self) -> str:
        return f"{self.run}/{EXIT_CODE_FILE}"

    def input(self, name: str) -> str:
        """An artifact input's folder (MLKUBE_INPUT_<NAME>)."""
        return f"{self.inputs}/{check_name(name, 'input')}"

    def output(self, name: str) -> str:
        """An output's path: a folder for artifacts, a file for parameters and metrics."""
        return f"{self.outputs}/{check_name(name, 'output')}"


@dataclass(frozen=True)
class StepInput:
    """An artifact input: downloaded to <root>/inputs/<name>/ and verified against `digest`."""

    name: str
    uri: str
    digest: str


@dataclass(frozen=True)
class StepOutput:
    name: str
    type: OutputType = "artifact"


@dataclass(frozen=True)
class StepManifest:
    """The MLKUBE_STEP JSON: what `inputs` fetches and `outputs` collects for one attempt."""

    run: str
    step: str
    attempt: int
    prefix: str
    inputs: tuple[StepInput, ...] = ()
    outputs: tuple[StepOutput, ...] = ()

    def __post_init__(self) -> None:
        _validate_manifest(self)

    def to_json(self) -> str:
        body = {
            "run": self.run,
            "step": self.step,
            "attempt": self.attempt,
            "prefix": self.prefix,
            "inputs": [{"name": i.name, "uri": i.uri, "digest": i.digest} for i in self.inputs],
            "outputs": [{"name": o.name, "type": o.type} for o in self.outputs],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def env(self, paths: StepPaths | None = None) -> dict[str, str]:
        """MLKUBE_INPUTS/OUTPUTS and MLKUBE_INPUT_*/MLKUBE_OUTPUT_* for `main`, under the pod's
        STEP_ROOT unless `paths` says otherwise (dev executor, run-local, tests)."""
        paths = paths or StepPaths()
        found = {ENV_INPUTS: paths.inputs, ENV_OUTPUTS: paths.outputs}
        found.update({step_env_name("input", i.name): paths.input(i.name) for i in self.inputs})
        found.update({step_env_name("output", o.name): paths.output(o.name) for o in self.outputs})
        return found


def parse_manifest(text: str | bytes) -> StepManifest:
    """The manifest from MLKUBE_STEP; unknown fields, wrong types and bad names are errors."""
    fields = parse_json_fields(text, ENV_STEP, MAX_MANIFEST_BYTES,
                               required=("run", "step", "attempt", "prefix"),
                               optional=("inputs", "outputs"))  # fmt: skip
    inputs = tuple(
        StepInput(**json_fields(i, "input", required=("name", "uri", "digest")))
        for i in json_list(fields.get("inputs", []), "inputs")
    )
    outputs = tuple(
        StepOutput(**json_fields(o, "output", required=("name",), optional=("type",)))
        for o in json_list(fields.get("outputs", []), "outputs")
    )
    return StepManifest(
        run=fields["run"], step=fields["step"], attempt=fields["attempt"],
        prefix=fields["prefix"], inputs=inputs, outputs=outputs,
    )  # fmt: skip


def _validate_manifest(manifest: StepManifest) -> None:
    text_field(manifest.run, "run")
    text_field(manifest.step, "step")
    text_field(manifest.prefix, "prefix")
    if "://" not in manifest.prefix or manifest.prefix.endswith("/"):
        raise ContractError(f"prefix {manifest.prefix!r} must be a URI without a trailing /")
    attempt = manifest.attempt
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ContractError(f"attempt must be an integer >= 1, got {attempt!r}")
    for item in manifest.inputs:
        check_name(item.name, "input")
        text_field(item.uri, f"input {item.name}: uri")
        if not isinstance(item.digest, str) or not _DIGEST_RE.fullmatch(item.digest):
            raise ContractError(f"input {item.name}: digest {item.digest!r} is not sha256:<hex>")
    for output in manifest.outputs:
        check_name(output.name, "output")
        if output.type not in OUTPUT_TYPES:
            raise ContractError(f"output {output.name}: type {output.type!r} not in {OUTPUT_TYPES}")
    check_env_names("input", [i.name for i in manifest.inputs])
    check_env_names("output", [o.name for o in manifest.outputs])
