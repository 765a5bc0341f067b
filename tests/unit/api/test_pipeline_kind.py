"""Pipeline and PipelineRun: defaults, the CRD's shape, and every validator with its message.

The CEL rules themselves run against the real API server in
tests/integration/test_pipeline_crd.py; here the pydantic side (CLI, operator, run snapshot).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from mlkube.api import pipeline as pl
from mlkube.api import pipeline_run as pr
from mlkube.api import pipeline_step as ps
from mlkube.api.crdgen import build_crd, openapi_schema
from mlkube.api.kinds import find_kind
from mlkube.api.pipeline import PIPELINE, PipelineSpec, value_error
from mlkube.api.pipeline_refs import find_cycle, placeholders, unknown_placeholders
from mlkube.api.pipeline_run import PIPELINE_RUN, PipelineRunSpec, PipelineRunStatus
from mlkube.api.samples import build_samples

Spec = dict[str, Any]


def _sample() -> Spec:
    spec: Spec = copy.deepcopy(build_samples()["pipeline.yaml"][0]["spec"])
    return spec


def _steps(spec: Spec) -> dict[str, Spec]:
    return {s["name"]: s for s in spec["steps"]}


def _rejected(spec: Spec) -> str:
    with pytest.raises(ValidationError) as info:
        PipelineSpec.model_validate(spec)
    return str(info.value)


def _schema(kind: Any) -> Mapping[str, Any]:
    return openapi_schema(build_crd(kind))


def _messages(node: Mapping[str, Any]) -> list[str]:
    return [rule["message"] for rule in node.get("x-kubernetes-validations", [])]


def test_sample_pipeline_is_the_closed_loop_and_defaults_fill_in() -> None:
    spec = PipelineSpec.model_validate(_sample())
    assert [s.name for s in spec.steps] == ["train", "evaluate", "register", "deploy"]
    assert [s.type for s in spec.steps] == ["container", "evaluate", "registerModel", "deploy"]
    assert (spec.fail_fast, spec.parallelism) == (True, 4)
    train = spec.steps[0]
    assert (train.retry.limit, train.retry.backoff.duration, train.retry.backoff.factor) == (
        2,
        "10s",
        2,
    )
    assert (train.cache.enabled, train.cache.max_age, train.cache.version) == (True, "30d", "")
    (schedule,) = spec.schedules
    assert (schedule.concurrency_policy, schedule.suspend, schedule.time_zone) == (
        "Forbid",
        True,
        "Europe/Paris",
    )
    assert (schedule.successful_runs_history_limit, schedule.failed_runs_history_limit) == (3, 1)
    (trigger,) = spec.triggers
    assert trigger.on_drift is not None and trigger.on_drift.endpoint == "credit"
    assert (trigger.on_drift.cooldown, trigger.on_drift.max_runs_per_day) == ("1h", 3)
    # References are dependencies: deploy -> register -> (evaluate, train), evaluate -> train.
    assert [s.dependencies() for s in spec.steps] == [
        [],
        ["train"],
        ["evaluate", "train"],
        ["register"],
    ]


def test_wire_names_are_camel_case_and_evaluate_uses_from() -> None:
    spec = PipelineSpec.model_validate(_sample())
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    evaluate = _steps(dumped)["evaluate"]["evaluate"]
    assert evaluate["metrics"][0]["from"] == {"step": "train", "output": "metrics"}
    assert evaluate["compareWith"]["higherIsBetter"] is True
    assert PipelineSpec.model_validate(dumped) == spec


def test_crds_names_columns_and_list_maps() -> None:
    assert find_kind("mlp") is PIPELINE and find_kind("mlpr") is PIPELINE_RUN
    assert find_kind("pipelineruns") is PIPELINE_RUN
    columns = {
        k.kind: [c["name"] for c in build_crd(k)["spec"]["versions"][0]["additionalPrinterColumns"]]
        for k in (PIPELINE, PIPELINE_RUN)
    }
    assert columns == {
        "Pipeline": ["Steps", "Last run", "Ready", "Age"],
        "PipelineRun": ["Pipeline", "Phase", "Progress", "Trigger", "Age"],
    }
    spec = _schema(PIPELINE)["properties"]["spec"]["properties"]
    for field in ("parameters", "steps", "schedules", "triggers"):
        assert spec[field]["x-kubernetes-list-map-keys"] == ["name"], field
    assert spec["steps"]["maxItems"] == pl.MAX_STEPS
    step = spec["steps"]["items"]["properties"]
    assert step["inputs"]["x-kubernetes-list-map-keys"] == ["name"]
    assert step["dependsOn"]["x-kubernetes-list-type"] == "set"
    assert step["type"]["default"] == "container"
    assert step["retry"]["default"] == {} and step["cache"]["default"] == {}
    status = _schema(PIPELINE_RUN)["properties"]["status"]
    assert status["default"] == {"observedGeneration": 0}
    assert status["properties"]["steps"]["x-kubernetes-list-map-keys"] == ["name"]
    assert _schema(PIPELINE)["properties"]["status"]["default"] == {"observedGeneration": 0}


def test_cel_rules_sit_where_the_api_server_checks_them() -> None:
    spec = _schema(PIPELINE)["properties"]["spec"]
    assert set(_messages(spec)) == {
        pl.MSG_DEPENDS_EXIST,
        pl.MSG_FROM_STEP_EXIST,
        pl.MSG_FROM_PARAMETER_EXIST,
        pl.MSG_DEPLOY_MODEL,
        pl.MSG_BLOCK_STEP_EXIST,
    }
    step = spec["properties"]["steps"]["items"]
    assert {
        ps.MSG_CONTAINER_IMAGE,
        ps.MSG_IMAGE_XOR_ENVIRONMENT,
        ps.MSG_CONTAINER_ONLY,
        ps.MSG_BUILTIN_OUTPUTS,
        pl.MSG_SELF_DEPENDENCY,
        *(ps.msg_block(t) for t in ps.BUILTIN_STEP_TYPES),
    } == set(_messages(step))
    assert ps.MSG_INPUT_ONE_SOURCE in _messages(step["properties"]["inputs"]["items"])
    deploy = step["properties"]["deploy"]
    assert _messages(deploy) == [ps.MSG_DEPLOY_ONE]
    trigger = spec["properties"]["triggers"]["items"]
    assert _messages(trigger) == [pl.MSG_TRIGGER_ONE]
    cron = spec["properties"]["schedules"]["items"]["properties"]["cron"]
    assert _messages(cron) and "cron must be five fields" in _messages(cron)[0]
    run = _schema(PIPELINE_RUN)
    assert _messages(run) == [pr.MSG_RESUME_SELF]
    assert set(_messages(run["properties"]["spec"])) == {
        pr.MSG_SPEC_IMMUTABLE,
        pr.MSG_RERUN_NEEDS_RESUME,
    }


def _mutate(step: str, **fields: Any) -> Callable[[Spec], None]:
    def apply(spec: Spec) -> None:
        _steps(spec)[step].update(fields)

    return apply


REJECTED: list[tuple[Callable[[Spec], None], str]] = [
    (lambda s: _steps(s)["train"].pop("image"), "step train: a container step needs"),
    (_mutate("evaluate", image="busybox"), "step evaluate: image, environment, command, args"),
    (_mutate("evaluate", outputs=[{"name": "x"}]), "step evaluate: only container steps"),
    (_mutate("train", type="deploy"), "step train: image, environment, command"),
    (_mutate("evaluate", type="deploy"), "a step of type evaluate needs the evaluate block"),
    (
        _mutate(
            "evaluate", deploy={"endpoint": "e", "model": {"step": "register"}, "canaryWeight": 5}
        ),
        "a step of type deploy needs the deploy block, and only steps of type deploy",
    ),
    (_mutate("train", inputs=[{"name": "a"}]), "input a: an input needs exactly one of"),
    (
        _mutate("train", inputs=[{"name": "a", "uri": "s3://b/a", "model": "m"}]),
        "input a: an input needs exactly one of fromParameter, fromStep, uri, model",
    ),
    (
        _mutate("train", inputs=[{"name": "a", "model": "m", "digest": "sha256:" + "a" * 64}]),
        "inputs[].digest is only for uri inputs",
    ),
    (
        lambda s: _steps(s)["deploy"]["deploy"].update(mirrorPercent=5),
        "deploy needs exactly one of canaryWeight, mirrorPercent",
    ),
    (
        lambda s: _steps(s)["deploy"]["deploy"].pop("canaryWeight"),
        "deploy needs exactly one of canaryWeight, mirrorPercent",
    ),
    (
        lambda s: _steps(s)["evaluate"]["evaluate"]["metrics"][0].pop("min"),
        "metric auc: an evaluate metric needs min, max or both",
    ),
    (
        lambda s: _steps(s)["evaluate"]["evaluate"]["metrics"][0].update(max=0.1),
        "metric auc: an evaluate metric's min must not exceed its max",
    ),
    (
        lambda s: s["triggers"][0].update(onNewData={"uri": "s3://b/new/"}),
        "trigger drift: a trigger needs exactly one of onDrift, onNewData",
    ),
    (_mutate("train", dependsOn=["nope"]), "step train: dependsOn names unknown step nope"),
    (_mutate("train", dependsOn=["train"]), "step train: dependsOn names the step itself"),
    (
        _mutate("train", inputs=[{"name": "a", "fromStep": {"step": "ghost", "output": "o"}}]),
        "step train: inputs.a.fromStep names unknown step ghost",
    ),
    (
        lambda s: _steps(s)["register"]["registerModel"]["artifact"].update(output="weights"),
        "registerModel.artifact names output weights that step train does not declare",
    ),
    (
        lambda s: _steps(s)["register"]["registerModel"]["artifact"].update(output="metrics"),
        "registerModel.artifact needs a artifact output; train.metrics is metrics",
    ),
    (
        lambda s: _steps(s)["register"]["registerModel"].update(
            baseline={"step": "train", "output": "metrics"}
        ),
        "registerModel.baseline needs a artifact output; train.metrics is metrics",
    ),
    (
        lambda s: _steps(s)["register"]["registerModel"].update(
            baseline={"step": "ghost", "output": "profile"}
        ),
        "registerModel.baseline names unknown step ghost",
    ),
    (
        lambda s: _steps(s)["deploy"]["deploy"]["model"].update(step="evaluate"),
        "deploy.model.step evaluate is not a registerModel step",
    ),
    (
        _mutate("train", inputs=[{"name": "lr", "fromParameter": "lr"}]),
        "input lr names unknown parameter lr",
    ),
    (
        _mutate("train", dependsOn=["deploy"]),
        "dependency cycle: deploy -> register -> evaluate -> train -> deploy",
    ),
    (
        _mutate("train", args=["{{parameters.lr}} {{inputs.code}} {{ outputs.nope }} {{run.id}}"]),
        "step train: unknown template placeholders {{parameters.lr}}, {{outputs.nope}}, {{run.id}}",
    ),
    (
        lambda s: _steps(s)["register"]["registerModel"].update(version="{{inputs.x}}"),
        "step register: unknown template placeholders {{inputs.x}}",
    ),
    (lambda s: s["steps"].append(copy.deepcopy(s["steps"][0])), "duplicate step name train"),
    (
        lambda s: s["schedules"][0].update(parameters={"C": "2", "lr": "0.1"}),
        "schedule nightly: unknown parameters lr",
    ),
    (
        lambda s: s["parameters"][0].update(default="high"),
        "parameter C: parameter default must be a value of the parameter's type",
    ),
    (lambda s: s["schedules"][0].update(cron="60 * * * *"), "cron must be five fields"),
    (_mutate("train", timeout="1.5h"), "String should match pattern"),
    (_mutate("train", name="Train_1"), "String should match pattern"),
    (_mutate("train", name="t" * 41), "at most 40 characters"),
    (lambda s: s.update(steps=[]), "at least 1 item"),
]


@pytest.mark.parametrize(("mutate", "message"), REJECTED, ids=[m for _, m in REJECTED])
def test_pipeline_spec_rejects_with_a_clear_message(
    mutate: Callable[[Spec], None], message: str
) -> None:
    spec = _sample()
    mutate(spec)
    assert message in _rejected(spec)


def test_whole_pipeline_problems_are_all_reported_at_once() -> None:
    spec = _sample()
    _steps(spec)["train"]["dependsOn"] = ["ghost"]
    _steps(spec)["train"]["args"] = ["{{parameters.nope}}"]
    text = _rejected(spec)
    assert "unknown step ghost" in text and "{{parameters.nope}}" in text


def test_implicit_dependencies_make_cycles_too() -> None:
    spec = _sample()
    # train reading register's output closes a loop through references alone (no dependsOn).
    _steps(spec)["train"]["inputs"].append(
        {"name": "gate", "fromStep": {"step": "register", "output": "x"}}
    )
    text = _rejected(spec)
    assert "dependency cycle: register -> evaluate -> train -> register" in text
    assert "names output x that step register does not declare" in text


def test_find_cycle_is_none_for_a_dag_and_names_the_loop() -> None:
    spec = PipelineSpec.model_validate(_sample())
    assert find_cycle(spec.steps) is None
    loop = [
        ps.Step.model_validate({"name": n, "image": "i", "dependsOn": [d]})
        for n, d in (("a", "b"), ("b", "c"), ("c", "a"))
    ]
    assert find_cycle(loop) == ["a", "b", "c", "a"]


def test_placeholders_accept_spaces_and_run_fields() -> None:
    text = "{{ parameters.C }}/{{run.name}}-{{run.uid}} {{inputs.data}} {{outputs.m}}"
    assert placeholders(text) == ["parameters.C", "run.name", "run.uid", "inputs.data", "outputs.m"]
    assert unknown_placeholders(text, ["C"], ["data"], ["m"]) == []
    assert unknown_placeholders("{{steps.x}} {{}}", [], [], []) == ["{{steps.x}}", "{{}}"]
    assert unknown_placeholders("no placeholders {single}", [], [], []) == []


@pytest.mark.parametrize(
    ("type_", "good", "bad"),
    [
        ("integer", ["0", "-3", "+12"], ["1.0", "x", ""]),
        ("number", ["1", "1.5", ".5", "1e-3", "-2.0E4"], ["1,5", "e3", "nan"]),
        ("boolean", ["true", "false"], ["True", "yes", "1"]),
        ("string", ["", "anything"], []),
    ],
)
def test_typed_values(type_: str, good: list[str], bad: list[str]) -> None:
    assert [value_error(type_, v) for v in good] == [None] * len(good)
    assert all(f"is not a {type_}" in (value_error(type_, v) or "") for v in bad)


def test_run_spec_rerun_needs_resume_and_defaults() -> None:
    run = PipelineRunSpec.model_validate({"pipeline": "credit-retrain"})
    assert (run.cache_policy, run.cancel, run.trigger, run.rerun_steps) == (
        "Default",
        False,
        None,
        [],
    )
    with pytest.raises(ValidationError, match=pr.MSG_RERUN_NEEDS_RESUME):
        PipelineRunSpec.model_validate({"pipeline": "p", "rerunSteps": ["train"]})
    resumed = PipelineRunSpec.model_validate(
        {"pipeline": "p", "resumeFrom": "r1", "rerunSteps": ["train"], "cachePolicy": "ForceRerun"}
    )
    assert resumed.rerun_steps == ["train"]
    with pytest.raises(ValidationError):
        PipelineRunSpec.model_validate({"pipeline": "p", "cachePolicy": "Never"})


def test_run_status_round_trips_a_cache_hit() -> None:
    status = PipelineRunStatus.model_validate(
        {
            "phase": "Running",
            "progress": "1/4",
            "steps": [
                {
                    "name": "train",
                    "phase": "Succeeded",
                    "cache": {"hit": True, "key": "sha256:" + "a" * 64, "sourceRun": "r0",
                              "reason": "hit"},
                    "outputs": [{"name": "model", "uri": "s3://b/m/",
                                 "digest": "sha256:" + "b" * 64}],
                    "metrics": {"auc": 0.91},
                }
            ],
            "producedModels": ["credit-risk-v5"],
        }
    )  # fmt: skip
    assert status.steps[0].cache is not None and status.steps[0].cache.hit
    assert status.to_status()["steps"][0]["cache"]["sourceRun"] == "r0"
    with pytest.raises(ValidationError):
        PipelineRunStatus.model_validate({"progress": "three of five"})
    assert set(pr.STEP_PHASES) >= set(pr.FINISHED_STEP_PHASES)
    assert set(pr.RUN_PHASES) >= set(pr.FINISHED_RUN_PHASES)


def test_resolve_parameters_fills_defaults_and_names_every_problem() -> None:
    spec = _sample()
    spec["parameters"] += [
        {"name": "epochs", "type": "integer"},
        {"name": "fast", "type": "boolean", "default": "false"},
    ]
    pipeline = PipelineSpec.model_validate(spec)
    assert pipeline.resolve_parameters({"epochs": "3"}) == {
        "C": "1.0",
        "epochs": "3",
        "fast": "false",
    }
    with pytest.raises(ValueError) as info:
        pipeline.resolve_parameters({"C": "big", "lr": "0.1"})
    assert str(info.value) == (
        "unknown parameter lr; parameter C: 'big' is not a number;"
        " parameter epochs is required (it has no default)"
    )
