"""The structural checker catches what the API server would reject."""

from __future__ import annotations

from typing import Any

import pytest

from mlkube.api.structural import find_cost_risks, find_structural_errors


def _root(**spec_props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": spec_props},
        },
    }


def test_valid_schema_has_no_errors() -> None:
    assert find_structural_errors(_root(name={"type": "string"})) == []


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ({"description": "no type"}, "missing type"),
        ({"anyOf": [{"type": "string"}], "type": "string"}, "anyOf"),
        ({"$ref": "#/$defs/X"}, "$ref"),
        ({"type": "string", "title": "T"}, "title"),
        ({"type": "object", "additionalProperties": False}, "additionalProperties: false"),
        (
            {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            "mutually exclusive",
        ),
        ({"type": "array", "uniqueItems": True, "items": {"type": "string"}}, "uniqueItems"),
        ({"type": "array"}, "items"),
        (
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            "must be required",
        ),
        (
            {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object"}},
            "scalar items",
        ),
        ({"type": "string", "x-kubernetes-validations": [{"rule": " "}]}, "rule expression"),
        ({"type": "string", "x-kubernetes-validations": [{"rule": "x", "msg": "m"}]}, "unknown"),
        ({"type": "string", "x-kubernetes-int-or-string": True}, "must not set type"),
    ],
)
def test_violations_are_reported_with_paths(field: dict[str, Any], problem: str) -> None:
    errors = find_structural_errors(_root(field=field))
    assert errors, field
    assert any(e.startswith(".spec.field") and problem in e for e in errors), errors


def test_metadata_must_be_untouched() -> None:
    root = _root()
    root["properties"]["metadata"] = {"type": "object", "properties": {"x": {"type": "string"}}}
    assert find_structural_errors(root) == [".metadata: must be exactly {type: object}"]


def test_untyped_is_fine_when_preserving_or_int_or_string() -> None:
    root = _root(
        a={"x-kubernetes-preserve-unknown-fields": True}, b={"x-kubernetes-int-or-string": True}
    )
    assert find_structural_errors(root) == []


def test_cost_risks_only_below_iterating_rules() -> None:
    loose = {"type": "object", "additionalProperties": {"type": "string"}}
    root = _root(
        checked={**loose, "x-kubernetes-validations": [{"rule": "self.all(k, k != 'x')"}]},
        unchecked={**loose, "x-kubernetes-validations": [{"rule": "size(self) < 3"}]},
    )
    risks = find_cost_risks(root)
    assert risks == [
        ".spec.checked: map without maxProperties",
        ".spec.checked{*}: string without maxLength",
    ]
