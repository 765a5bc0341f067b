"""Every generated CRD is structural, typed, described and cheap enough for CEL."""

from __future__ import annotations

from typing import Any

import yaml

from mlkube.api.crdgen import KindDescriptor, build_crd
from mlkube.api.crdgen import openapi_schema as schema_of
from mlkube.api.render import dump_yaml
from mlkube.api.structural import (
    find_cost_risks,
    find_preserved_fields,
    find_structural_errors,
    walk,
)


def _all_keys(value: Any) -> set[str]:
    """Every mapping key anywhere in a document (property names included)."""
    if isinstance(value, dict):
        keys = set(value)
        for child in value.values():
            keys |= _all_keys(child)
        return keys
    if isinstance(value, list):
        return set().union(*(_all_keys(v) for v in value)) if value else set()
    return set()


def test_schema_has_no_refs_unions_or_titles(kind: KindDescriptor) -> None:
    keys = _all_keys(build_crd(kind))
    assert not keys & {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title"}


def test_yaml_has_no_refs_or_anchors(kind: KindDescriptor) -> None:
    text = dump_yaml([build_crd(kind)])
    for needle in ("$ref", "anyOf", "&id", "*id"):
        assert needle not in text


def test_every_node_is_typed(kind: KindDescriptor) -> None:
    root = schema_of(build_crd(kind))
    untyped = [
        path
        for path, node in walk(root)
        if "type" not in node
        and not node.get("x-kubernetes-int-or-string")
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert untyped == []
    assert find_structural_errors(root) == []


def test_top_level_shape(kind: KindDescriptor) -> None:
    root = schema_of(build_crd(kind))
    assert root["type"] == "object"
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert root["properties"]["metadata"] == {"type": "object"}
    assert root["required"] == ["spec"]


def test_status_preserves_no_unknown_fields(kind: KindDescriptor) -> None:
    root = schema_of(build_crd(kind))
    assert find_preserved_fields(root["properties"]["status"]) == []
    assert find_preserved_fields(root["properties"]["spec"]) == []


def test_status_defaults_to_generation_zero_observed(kind: KindDescriptor) -> None:
    """kstatus reads an object without status as Current: the default makes an object the
    operator has not seen yet InProgress (generation 1, observed 0); see docs/status.md."""
    status = schema_of(build_crd(kind))["properties"]["status"]
    assert status["default"] == {"observedGeneration": 0}
    assert status["properties"]["observedGeneration"]["minimum"] == 0
    kind.status_model.model_validate(status["default"])


def test_every_field_has_a_description(kind: KindDescriptor) -> None:
    """`kubectl explain` prints these; a field without one is a documentation bug."""
    root = schema_of(build_crd(kind))
    missing = [path for path, node in walk(root) if "description" not in node]
    # Only leaf nodes of lists/maps (the element of `[]string`) may go undescribed.
    assert [p for p in missing if not p.endswith(("[*]", "{*}")) and p != ".metadata"] == []


def test_cel_rules_have_bounded_inputs(kind: KindDescriptor) -> None:
    assert find_cost_risks(schema_of(build_crd(kind))) == []


def test_crd_envelope(kind: KindDescriptor) -> None:
    crd = build_crd(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{kind.plural}.mlkube.dev"
    spec = crd["spec"]
    assert spec["group"] == "mlkube.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["mlkube"]
    assert spec["names"]["listKind"] == kind.kind + "List"
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True and version["storage"] is True
    assert version["subresources"] == {"status": {}}
    assert version["additionalPrinterColumns"][-1] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }


def test_short_names_are_unique_and_not_builtin(crds: dict[str, Any]) -> None:
    builtin = {"po", "svc", "deploy", "cm", "ns", "no", "pv", "pvc", "sa", "ep", "ing", "mp"}
    names = [n for crd in crds.values() for n in crd["spec"]["names"]["shortNames"]]
    assert len(names) == len(set(names))
    assert not set(names) & builtin


def test_generation_is_deterministic(kind: KindDescriptor) -> None:
    first = dump_yaml([build_crd(kind)])
    second = dump_yaml([build_crd(kind)])
    assert first == second
    assert yaml.safe_load(first.split("\n", 1)[1]) == build_crd(kind)
