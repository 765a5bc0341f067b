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
    template_values,
    typed_parameters,
    typed_value,
)
from support.pipeline_specs import container, pipeline

DECLARED = [
    Parameter(name="C", type="number", default="1.0"),
    Parameter(name="epochs", type="integer", default="3"),
    Parameter(name="deploy", type="boolean", default="false"),
    Parameter(name="dataset"),
]


def test_resolved_values_convert_to_their_types() -> None:
    spec = pipeline(container("a"), parameters=[p.model_dump(by_alias=True) for p in DECLARED])
    values = spec.resolve_parameters({"dataset": "s3://b/d", "epochs": "5"})
    assert typed_parameters(DECLARED, values) == {
        "C": 1.0,
        "epochs": 5,
        "deploy": False,
        "dataset": "s3://b/d",
    }
    with pytest.raises(ParameterError, match="parameter epochs: 'x' is not a"):
        typed_parameters(DECLARED, {"epochs": "x"})


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
