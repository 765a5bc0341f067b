"""Check a CRD schema against the API server's structural-schema and CEL-cost rules.

The generator runs these checks before returning a CRD so a bad model fails at `hack/generate`
time with a field path, instead of at `kubectl apply` time with a long server error. The rules
mirror apiextensions.k8s.io/v1: every node typed (unless it preserves unknown fields or is
int-or-string), no `$ref` or logical junctors, `metadata` untouched, list-map keys required.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_FORBIDDEN = ("$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "title")
_RULE_KEYS = frozenset(
    {"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"}
)
# CEL macros and functions whose cost grows with the size of a list, map or string.
_ITERATING = re.compile(r"\.(all|exists|exists_one|map|filter|sum|min|max|join|split)\(")
_SCALARS = frozenset({"string", "integer", "number", "boolean"})


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield (path, node) for a schema node and every node below it."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from walk(node["additionalProperties"], f"{path}{{*}}")
    if isinstance(node.get("items"), Mapping):
        yield from walk(node["items"], f"{path}[*]")


def find_structural_errors(root: Mapping[str, Any]) -> list[str]:
    """Every violation in an openAPIV3Schema, as `path: problem` strings (empty when valid)."""
    errors = []
    if root.get("type") != "object":
        errors.append("<root>: type must be object")
    metadata = root.get("properties", {}).get("metadata")
    if metadata is not None and dict(metadata) != {"type": "object"}:
        errors.append(".metadata: must be exactly {type: object}")
    for path, node in walk(root):
        errors.extend(f"{path or '<root>'}: {problem}" for problem in _node_problems(node))
    return errors


def find_cost_risks(root: Mapping[str, Any]) -> list[str]:
    """Unbounded lists, maps and strings below nodes whose CEL rules iterate.

    The API server estimates a rule's worst-case cost from maxItems/maxProperties/maxLength and
    rejects the CRD when the estimate exceeds its budget; unbounded sizes are estimated from the
    request size limit, which is almost always too much.
    """
    risks: list[str] = []
    for path, node in walk(root):
        rules = node.get("x-kubernetes-validations", [])
        if not any(_ITERATING.search(rule.get("rule", "")) for rule in rules):
            continue
        for sub_path, sub in walk(node, path):
            risks.extend(f"{sub_path}: {problem}" for problem in _unbounded(sub))
    return sorted(set(risks))


def find_preserved_fields(root: Mapping[str, Any]) -> list[str]:
    """Paths that keep unknown fields (so are not pruned or validated)."""
    return [path for path, node in walk(root) if node.get("x-kubernetes-preserve-unknown-fields")]


def _node_problems(node: Mapping[str, Any]) -> Iterator[str]:
    for key in _FORBIDDEN:
        if key in node:
            yield f"keyword {key} is not allowed"
    free = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
        "x-kubernetes-int-or-string"
    )
    if "type" not in node and not free:
        yield "missing type"
    if node.get("x-kubernetes-int-or-string") and "type" in node:
        yield "int-or-string must not set type"
    if "properties" in node and "additionalProperties" in node:
        yield "properties and additionalProperties are mutually exclusive"
    if node.get("additionalProperties") is False:
        yield "additionalProperties: false is not allowed"
    if node.get("uniqueItems"):
        yield "uniqueItems is not allowed; use x-kubernetes-list-type: set"
    if node.get("type") == "array" and not isinstance(node.get("items"), Mapping):
        yield "arrays need an items schema"
    if node.get("default") is None and "default" in node:
        yield "default: null is not allowed"
    yield from _list_type_problems(node)
    for rule in node.get("x-kubernetes-validations", []):
        if not isinstance(rule.get("rule"), str) or not rule["rule"].strip():
            yield "validation rule without a rule expression"
        unknown = set(rule) - _RULE_KEYS
        if unknown:
            yield f"validation rule has unknown keys {sorted(unknown)}"


def _list_type_problems(node: Mapping[str, Any]) -> Iterator[str]:
    list_type = node.get("x-kubernetes-list-type")
    items = node.get("items", {})
    if list_type == "set" and items.get("type") not in _SCALARS:
        yield "list-type set needs scalar items"
    if list_type != "map":
        if "x-kubernetes-list-map-keys" in node:
            yield "list-map-keys without list-type map"
        return
    keys = node.get("x-kubernetes-list-map-keys") or []
    if not keys:
        yield "list-type map needs x-kubernetes-list-map-keys"
    if items.get("type") != "object":
        yield "list-type map needs object items"
    properties = items.get("properties", {})
    for key in keys:
        if key not in properties:
            yield f"list-map key {key} is not a property of the items"
        elif key not in items.get("required", []) and "default" not in properties[key]:
            yield f"list-map key {key} must be required or defaulted"
        elif properties[key].get("type") not in _SCALARS:
            yield f"list-map key {key} must be a scalar"


def _unbounded(node: Mapping[str, Any]) -> Iterator[str]:
    kind = node.get("type")
    if kind == "array" and "maxItems" not in node:
        yield "list without maxItems"
    if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
        yield "map without maxProperties"
    if node.get("x-kubernetes-preserve-unknown-fields"):
        yield "free-form value"
    bounded_string = "maxLength" in node or "enum" in node or "format" in node
    if (kind == "string" or node.get("x-kubernetes-int-or-string")) and not bounded_string:
        yield "string without maxLength"
