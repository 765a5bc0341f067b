"""Declarations that the CRD generator turns into Kubernetes schema extensions.

Pydantic knows nothing about CEL or list-map semantics, so these small markers carry them into
the JSON schema: put a `Rule`, `ListMap` or `ListSet` in a field's `Annotated[...]` metadata, or
list `Rule`s in a model's `kube_validations` class attribute (see `mlkube.api.common.ApiModel`).
They only add `x-kubernetes-*` keys; `mlkube.api.crdgen` validates and keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

VALIDATIONS_KEY = "x-kubernetes-validations"

Reason = Literal[
    "FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"
]


@dataclass(frozen=True)
class Rule:
    """One CEL validation rule (apiextensions.k8s.io/v1 ValidationRule).

    Rules that mention `oldSelf` are transition rules: the API server runs them on updates only,
    and only when the field exists in both the old and the new object.
    """

    rule: str
    message: str | None = None
    message_expression: str | None = None
    reason: Reason | None = None
    field_path: str | None = None
    optional_old_self: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Render as the ValidationRule object the API server expects (camelCase, no nulls)."""
        out: dict[str, Any] = {"rule": self.rule}
        optional = {
            "message": self.message,
            "messageExpression": self.message_expression,
            "reason": self.reason,
            "fieldPath": self.field_path,
            "optionalOldSelf": self.optional_old_self,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        return out

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # A field-level rule stays beside a `$ref` (never inside the shared definition), so the
        # same model used by two fields does not pick up the other field's rules.
        return add_rules(dict(handler(core_schema)), [self])


def immutable(message: str) -> Rule:
    """A transition rule that forbids changing a field once it is set."""
    return Rule("self == oldSelf", message=message)


@dataclass(frozen=True)
class ListMap:
    """Mark a list of objects as a map keyed by `keys` (duplicates rejected, merged by key)."""

    keys: tuple[str, ...]

    def __init__(self, *keys: str) -> None:
        object.__setattr__(self, "keys", tuple(keys))

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = dict(handler(core_schema))
        schema["x-kubernetes-list-type"] = "map"
        schema["x-kubernetes-list-map-keys"] = list(self.keys)
        return schema


@dataclass(frozen=True)
class ListSet:
    """Mark a list of scalars as a set (duplicates rejected by the API server)."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = dict(handler(core_schema))
        schema["x-kubernetes-list-type"] = "set"
        return schema


def add_rules(schema: dict[str, Any], rules: Iterable[Rule]) -> dict[str, Any]:
    """Append rules to a schema node's `x-kubernetes-validations`, keeping earlier ones first."""
    rendered = [rule.to_dict() for rule in rules]
    if rendered:
        schema[VALIDATIONS_KEY] = [*schema.get(VALIDATIONS_KEY, []), *rendered]
    return schema
