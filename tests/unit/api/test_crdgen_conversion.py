"""How pydantic constructs map to structural schema, on small purpose-built models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from mlkube.api.common import ApiModel
from mlkube.api.crdgen import AGE_COLUMN, KindDescriptor, PrinterColumn, build_crd, build_schema
from mlkube.api.errors import ApiError, CrdGenError
from mlkube.api.markers import ListMap, ListSet, Rule, immutable
from mlkube.api.structural import find_structural_errors


class Inner(ApiModel):
    """An inner object."""

    uri: Annotated[str, Field(max_length=10)]
    """Where."""
    digest: str | None = None
    """Optional digest."""


class Outer(ApiModel):
    """The outer object."""

    kube_validations = (Rule("self.count >= 0", message="class rule"),)

    first: Annotated[Inner, immutable("first is immutable")]
    """First use of Inner."""
    second: Inner | None = None
    second_doc_only: Inner | None = None
    """Field docs win over class docs."""
    count: Annotated[int, Field(gt=0, le=10)] = 3
    """A bounded count."""
    ratio: Annotated[float, Field(ge=0, lt=1)] = 0.5
    """A ratio."""
    mode: Literal["a", "b"] = "a"
    """A mode."""
    only: Literal["x"] = "x"
    """A constant."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Free-form parameters."""
    anything: Any = None
    """Any JSON value."""
    quantity: int | Annotated[str, Field(pattern="^[0-9]+m$")] = 1
    """Int or string."""
    labels: Annotated[dict[str, str], Field(max_length=4)] = Field(default_factory=dict)
    """A string map."""
    items: Annotated[list[Inner], ListMap("uri")] = Field(default_factory=list)
    """A list map."""
    tags: Annotated[list[str], ListSet()] = Field(default_factory=list)
    """A list set."""
    unique: set[str] = Field(default_factory=set)
    """A Python set."""
    defaulted: Inner = Inner(uri="u")
    """A defaulted object."""


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return build_schema(Outer)


def test_optional_becomes_nullable(schema: dict[str, Any]) -> None:
    digest = schema["properties"]["first"]["properties"]["digest"]
    assert digest == {"type": "string", "nullable": True, "description": "Optional digest."}
    assert schema["properties"]["second"]["nullable"] is True
    assert schema["properties"]["second"]["type"] == "object"


def test_refs_are_inlined_with_field_descriptions(schema: dict[str, Any]) -> None:
    assert schema["properties"]["second"]["description"] == "An inner object."
    second_doc = schema["properties"]["secondDocOnly"]
    assert second_doc["description"] == "Field docs win over class docs."
    assert second_doc["properties"]["uri"]["maxLength"] == 10


def test_field_rules_do_not_leak_into_shared_definitions(schema: dict[str, Any]) -> None:
    props = schema["properties"]
    assert props["first"]["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "first is immutable"}
    ]
    assert "x-kubernetes-validations" not in props["second"]
    assert schema["x-kubernetes-validations"] == [
        {"rule": "self.count >= 0", "message": "class rule"}
    ]


def test_exclusive_bounds_use_openapi_v3_form(schema: dict[str, Any]) -> None:
    count = schema["properties"]["count"]
    assert (count["minimum"], count["exclusiveMinimum"], count["maximum"]) == (0, True, 10)
    ratio = schema["properties"]["ratio"]
    assert (ratio["maximum"], ratio["exclusiveMaximum"], ratio["minimum"]) == (1, True, 0)


def test_literals_become_enums(schema: dict[str, Any]) -> None:
    assert schema["properties"]["mode"]["enum"] == ["a", "b"]
    assert schema["properties"]["only"] == {
        "type": "string",
        "enum": ["x"],
        "default": "x",
        "description": "A constant.",
    }


def test_free_form_values_preserve_unknown_fields(schema: dict[str, Any]) -> None:
    params = schema["properties"]["params"]
    assert params["type"] == "object"
    assert params["x-kubernetes-preserve-unknown-fields"] is True
    assert "additionalProperties" not in params
    anything = schema["properties"]["anything"]
    assert anything == {
        "description": "Any JSON value.",
        "x-kubernetes-preserve-unknown-fields": True,
    }


def test_int_or_string(schema: dict[str, Any]) -> None:
    quantity = schema["properties"]["quantity"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert quantity["pattern"] == "^[0-9]+m$"
    assert "type" not in quantity


def test_maps_and_lists(schema: dict[str, Any]) -> None:
    labels = schema["properties"]["labels"]
    assert labels["additionalProperties"] == {"type": "string"}
    assert labels["maxProperties"] == 4
    items = schema["properties"]["items"]
    assert items["x-kubernetes-list-type"] == "map"
    assert items["x-kubernetes-list-map-keys"] == ["uri"]
    assert schema["properties"]["tags"]["x-kubernetes-list-type"] == "set"
    unique = schema["properties"]["unique"]
    assert unique["x-kubernetes-list-type"] == "set" and "uniqueItems" not in unique


def test_defaults_drop_nulls(schema: dict[str, Any]) -> None:
    assert schema["properties"]["defaulted"]["default"] == {"uri": "u"}
    assert "default" not in schema["properties"]["second"]


def test_required_and_no_extra_keywords(schema: dict[str, Any]) -> None:
    assert schema["required"] == ["first"]
    assert "additionalProperties" not in schema  # extra="forbid" is pruning on the server
    assert find_structural_errors(schema) == []


def test_recursive_models_are_rejected() -> None:
    class Node(BaseModel):
        children: list[Node] = []

    with pytest.raises(CrdGenError, match="recursive"):
        build_schema(Node)


def test_general_unions_are_rejected() -> None:
    class A(BaseModel):
        a: int

    class B(BaseModel):
        b: int

    class Either(BaseModel):
        value: A | B

    with pytest.raises(CrdGenError, match="unions"):
        build_schema(Either)


def test_tuples_are_rejected() -> None:
    class Pair(BaseModel):
        value: tuple[int, str]

    with pytest.raises(CrdGenError, match="tuple"):
        build_schema(Pair)


def test_errors_share_one_base() -> None:
    assert issubclass(CrdGenError, ApiError)


def test_build_crd_refuses_non_structural_status() -> None:
    class BadStatus(BaseModel):
        """A status that declares a list map on a key that is not required."""

        items: Annotated[list[Inner], ListMap("digest")] = []

    kind = KindDescriptor(
        kind="Thing",
        plural="things",
        singular="thing",
        spec_model=Inner,
        status_model=BadStatus,
        printer_columns=(PrinterColumn("Uri", ".spec.uri"), AGE_COLUMN),
    )
    with pytest.raises(CrdGenError, match="digest must be required"):
        build_crd(kind)


def test_kind_level_rules_reach_the_root() -> None:
    kind = KindDescriptor(
        kind="Thing",
        plural="things",
        singular="thing",
        spec_model=Inner,
        status_model=Inner,
        validations=(Rule("size(self.metadata.name) <= 40", message="name too long"),),
    )
    root = build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert root["x-kubernetes-validations"] == [
        {"rule": "size(self.metadata.name) <= 40", "message": "name too long"}
    ]
