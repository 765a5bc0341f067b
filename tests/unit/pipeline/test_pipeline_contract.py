"""The step-pod contract: env names, the wrapper command, paths and the strict manifest."""

from __future__ import annotations

import json

import pytest

from mlkube.api.pipeline_step import IDENT_PATTERN
from mlkube.builders.pipeline_contract import (
    ENV_INPUTS,
    NAME_PATTERN,
    WRAPPER,
    ContractError,
    StepInput,
    StepManifest,
    StepOutput,
    StepPaths,
    attempt_prefix,
    check_env_names,
    kube_escape,
    main_command,
    output_uri,
    parse_manifest,
    step_env_name,
    summary_uri,
)

DIGEST = "sha256:" + "ab" * 32
MANIFEST = {
    "run": "r1",
    "step": "train",
    "attempt": 2,
    "prefix": "s3://b/ns/pipelineruns/r1/train/a2",
    "inputs": [{"name": "data", "uri": "s3://b/data/", "digest": DIGEST}],
    "outputs": [{"name": "model", "type": "artifact"}, {"name": "auc", "type": "metrics"}],
}


def test_env_names_upper_case_and_underscore() -> None:
    assert step_env_name("input", "train-data") == "MLKUBE_INPUT_TRAIN_DATA"
    assert step_env_name("output", "model") == "MLKUBE_OUTPUT_MODEL"
    assert step_env_name("param", "learningRate") == "MLKUBE_PARAM_LEARNINGRATE"


@pytest.mark.parametrize("name", ["", "-a", "1a", "a/b", "a.b", "..", "x" * 64, "a b", "a\n"])
def test_env_names_refuse_unsafe_names(name: str) -> None:
    with pytest.raises(ContractError, match="not a valid name"):
        step_env_name("input", name)


def test_names_are_the_api_identifiers() -> None:
    assert NAME_PATTERN == IDENT_PATTERN  # the serving image does not import the API models
    for name in ("_x", "x_", "x-", "learning_rate", "A" * 63):
        assert step_env_name("param", name).startswith("MLKUBE_PARAM_")


def test_env_name_collisions_are_refused() -> None:
    check_env_names("output", ["a-b", "c"])
    with pytest.raises(ContractError, match="both map to MLKUBE_OUTPUT_A_B"):
        check_env_names("output", ["a-b", "A_b"])


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's expansion of command/args (k8s third_party/forked/golang/expansion):
    `$$` -> `$`, `$(NAME)` -> its value when defined, anything else unchanged."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            end = text.find(")", i + 2) if nxt == "(" else -1
            if end != -1:
                name = text[i + 2 : end]
                out.append(env.get(name, f"$({name})"))
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def test_main_command_wraps_and_the_escaped_script_survives_the_kubelet() -> None:
    argv = main_command(["python", "train.py"], ["--lr", "0.1"])
    assert argv == ["/bin/sh", "-c", WRAPPER, "mlkube-step", "python", "train.py", "--lr", "0.1"]
    spec = [argv[0], argv[1], kube_escape(argv[2]), *argv[3:]]
    assert '"$$"' in WRAPPER and kubelet_expand(WRAPPER, {}) != WRAPPER  # must be escaped
    assert [kubelet_expand(part, {"X": "1"}) for part in spec] == argv
    # The user's own $(VAR) references still expand, as in any pod.
    user = main_command(["python", "t.py"], ["--n", "$(N)"])
    assert kubelet_expand(user[-1], {"N": "5"}) == "5"
    with pytest.raises(ContractError):
        main_command([], ["x"])


def test_wrapper_uses_only_shell_builtins() -> None:
    # Any image with a POSIX sh runs it: no mv, cat, sleep binaries.
    words = {line.split()[0] for line in WRAPPER.splitlines()}
    builtins = {"echo", "exit", "trap", "while", "wait", "kill", "done", "}"}
    assignments = {w for w in words if "=" in w}
    assert words - assignments - {'"$@"'} <= builtins
    assert assignments == {'run="${MLKUBE_STEP_ROOT:-/mlkube}/run"', "child=$!", "code=$?"}


def test_prefix_and_uris() -> None:
    prefix = attempt_prefix("s3://b/", "ns", "r1", "train", 3)
    assert prefix == "s3://b/ns/pipelineruns/r1/train/a3"
    assert output_uri(prefix, "model") == prefix + "/outputs/model"
    assert summary_uri(prefix) == prefix + "/_mlkube/summary.json"


def test_paths_under_a_root() -> None:
    paths = StepPaths("/tmp/x")
    assert (paths.inputs, paths.outputs, paths.run) == (
        "/tmp/x/inputs",
        "/tmp/x/outputs",
        "/tmp/x/run",
    )
    assert (paths.pid_file, paths.exit_code_file) == ("/tmp/x/run/main.pid", "/tmp/x/run/exit-code")
    assert paths.input("data") == "/tmp/x/inputs/data"
    with pytest.raises(ContractError):
        paths.output("../etc")


def test_manifest_round_trips() -> None:
    manifest = parse_manifest(json.dumps(MANIFEST))
    assert manifest == StepManifest(
        run="r1", step="train", attempt=2, prefix=MANIFEST["prefix"],  # type: ignore[arg-type]
        inputs=(StepInput("data", "s3://b/data/", DIGEST),),
        outputs=(StepOutput("model", "artifact"), StepOutput("auc", "metrics")),
    )  # fmt: skip
    assert parse_manifest(manifest.to_json()) == manifest
    assert json.loads(manifest.to_json()) == MANIFEST


def test_manifest_output_type_defaults_to_artifact() -> None:
    body = {**MANIFEST, "outputs": [{"name": "model"}]}
    assert parse_manifest(json.dumps(body)).outputs == (StepOutput("model", "artifact"),)


def test_manifest_env_for_main() -> None:
    env = parse_manifest(json.dumps(MANIFEST)).env()
    assert env == {
        ENV_INPUTS: "/mlkube/inputs",
        "MLKUBE_OUTPUTS": "/mlkube/outputs",
        "MLKUBE_INPUT_DATA": "/mlkube/inputs/data",
        "MLKUBE_OUTPUT_MODEL": "/mlkube/outputs/model",
        "MLKUBE_OUTPUT_AUC": "/mlkube/outputs/auc",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "unknown fields \\['extra'\\]"),
        ({"attempt": 0}, "attempt must be an integer >= 1"),
        ({"attempt": True}, "attempt must be an integer"),
        ({"prefix": "s3://b/x/"}, "without a trailing /"),
        ({"prefix": "relative/path"}, "must be a URI"),
        ({"run": ""}, "run must be a non-empty string"),
        ({"inputs": [{"name": "d", "uri": "s3://b/d", "digest": "sha256:AB"}]}, "not sha256"),
        ({"inputs": [{"name": "d", "uri": "s3://b/d"}]}, "missing fields \\['digest'\\]"),
        ({"outputs": [{"name": "m", "type": "model"}]}, "type 'model' not in"),
        ({"outputs": [{"name": "../m"}]}, "not a valid name"),
        ({"outputs": [{"name": "a-b"}, {"name": "a_b"}]}, "both map to"),
        ({"inputs": {}}, "inputs must be a JSON array"),
    ],
)
def test_manifest_is_strict(change: dict[str, object], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        parse_manifest(json.dumps({**MANIFEST, **change}))


def test_manifest_missing_fields_and_not_json() -> None:
    with pytest.raises(ContractError, match="missing fields \\['prefix'\\]"):
        parse_manifest(json.dumps({k: v for k, v in MANIFEST.items() if k != "prefix"}))
    with pytest.raises(ContractError, match="not JSON"):
        parse_manifest("{")
    with pytest.raises(ContractError, match="must be a JSON object"):
        parse_manifest("[]")
