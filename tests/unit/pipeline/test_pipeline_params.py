"""Run parameters (defaults, types, errors naming the parameter) and template rendering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlkube.api.pipeline import Parameter
from mlkube.reconcile.pipeline_params import (
    ParameterError,
    TemplateError,
    render,
    render_env,
    resolve_parameters,
    template_values,
    typed_parameters,
    typed_value,
)

DECLARED = [
    Parameter(name="C", type="number", default="1.0"),
    Parameter(name="epochs", type="integer", default="3"),
    Parameter(name="deploy", type="boolean", default="false"),
    Parameter(name="dataset"),
]


def test_defaults_fill_in_and_types_convert() -> None:
    values = resolve_parameters(DECLARED, {"dataset": "s3://b/d", "epochs": "5"})
    assert values == {"C": "1.0", "epochs": "5", "deploy": "false", "dataset": "s3://b/d"}
    assert typed_parameters(DECLARED, values) == {
        "C": 1.0,
        "epochs": 5,
        "deploy": False,
        "dataset": "s3://b/d",
    }


@pytest.mark.parametrize(
    ("given_", "message"),
    [
        ({}, "parameter dataset is required"),
        ({"dataset": "x", "epochs": "five"}, "parameter epochs: 'five' is not a integer"),
        ({"dataset": "x", "C": "1e"}, "parameter C: '1e' is not a number"),
        ({"dataset": "x", "deploy": "yes"}, "parameter deploy: 'yes' is not a boolean"),
        ({"dataset": "x", "lr": "1", "zz": "2"}, "unknown parameters: lr, zz"),
    ],
)
def test_bad_values_are_errors_naming_the_parameter(given_: dict[str, str], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        resolve_parameters(DECLARED, given_)


def test_typed_values() -> None:
    assert typed_value("integer", "-7") == -7
    assert typed_value("number", ".5e1") == 5.0
    assert typed_value("boolean", "true") is True
    assert typed_value("string", "007") == "007"
    with pytest.raises(ParameterError, match="not a finite number"):
        typed_value("number", "1e999")


@given(st.integers(-(10**30), 10**30))
def test_integers_round_trip(n: int) -> None:
    assert typed_value("integer", str(n)) == n


VALUES = template_values(
    parameters={"C": "0.5"},
    inputs={"data": "/mlkube/inputs/data"},
    outputs={"model": "/mlkube/outputs/model"},
    run_name="r1",
    run_uid="u-1",
)


def test_render_every_kind_of_placeholder() -> None:
    text = "--C={{parameters.C}} {{ inputs.data }} {{outputs.model}} {{run.name}}/{{run.uid}}"
    assert render(text, VALUES) == "--C=0.5 /mlkube/inputs/data /mlkube/outputs/model r1/u-1"


def test_unknown_placeholders_are_named() -> None:
    with pytest.raises(TemplateError, match=r"unknown template placeholder \{\{parameters.lr\}\}"):
        render("--lr {{parameters.lr}}", VALUES)
    with pytest.raises(TemplateError, match=r"\{\{steps.train\}\}"):
        render("{{steps.train}}", VALUES)


def test_rendering_is_one_pass() -> None:
    values = {**VALUES, "parameters.C": "{{run.uid}}"}
    assert render("{{parameters.C}}", values) == "{{run.uid}}"


def test_render_env_renders_values_and_keeps_references() -> None:
    env = [
        {"name": "C", "value": "{{parameters.C}}"},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    assert render_env(env, VALUES) == [
        {"name": "C", "value": "0.5"},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=50))
def test_text_without_braces_is_unchanged(text: str) -> None:
    assert render(text, {}) == text
