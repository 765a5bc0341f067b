"""Turn pydantic models into structural CustomResourceDefinitions (apiextensions.k8s.io/v1).

Pure: no I/O, no clock. The API server only accepts *structural* schemas (every node typed, no
`$ref`, no type unions below the root, metadata untouched), while pydantic emits JSON Schema
2020-12 with `$defs`, `anyOf [X, null]`, titles and numeric `exclusiveMinimum`. `build_schema`
bridges the two; `build_crd` wraps a kind's spec and status schemas into a full CRD and refuses
to return one that `mlkube.api.structural` finds non-structural.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from mlkube import contract
from mlkube.api.errors import CrdGenError
from mlkube.api.markers import VALIDATIONS_KEY, Rule
from mlkube.api.structural import find_structural_errors

Json = dict[str, Any]
ColumnType = Literal["string", "integer", "number", "boolean", "date"]

# Keywords copied through unchanged (after their children are normalized).
_KEPT = frozenset(
    {
        "type", "description", "required", "enum", "pattern", "nullable",
        "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
        "minProperties", "maxProperties", "multipleOf",
        VALIDATIONS_KEY, "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type", "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource",
    }
)  # fmt: skip
# Keywords that only matter to JSON Schema tooling, dropped silently.
_DROPPED = frozenset({"title", "examples", "$schema", "deprecated", "readOnly", "writeOnly"})
# Formats the API server validates; others (pydantic's "path", "duration" in ISO 8601, ...)
# would be ignored or mean something else there, so they are dropped.
_FORMATS = frozenset(
    {"date-time", "date", "uuid", "uri", "email", "ipv4", "ipv6", "int32", "int64"}
)
_NULL = {"type": "null"}


@dataclass(frozen=True)
class PrinterColumn:
    """One `kubectl get` column (additionalPrinterColumns)."""

    name: str
    json_path: str
    type: ColumnType = "string"
    description: str = ""
    priority: int = 0

    def to_dict(self) -> Json:
        out: Json = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class KindDescriptor:
    """Everything needed to publish one kind: names, models, columns, root-level rules."""

    kind: str
    plural: str
    singular: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    short_names: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = (AGE_COLUMN,)
    description: str = ""
    categories: tuple[str, ...] = ("mlkube",)
    validations: tuple[Rule, ...] = ()
    group: str = contract.GROUP
    version: str = contract.VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def build_schema(model: type[BaseModel]) -> Json:
    """The structural OpenAPI v3 schema of one pydantic model, with every `$ref` inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    # Deep copy: inlined definitions must not share lists (YAML would emit anchors).
    return copy.deepcopy(_normalize(raw, defs, model.__name__, ()))


def build_crd(kind: KindDescriptor) -> Json:
    """The complete CustomResourceDefinition of a kind; raises CrdGenError if not structural."""
    root: Json = {
        "type": "object",
        "description": kind.description or _doc(kind.spec_model),
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "Versioned schema of this object; always " + kind.api_version,
            },
            "kind": {"type": "string", "description": "Always " + kind.kind},
            "metadata": {"type": "object"},
            "spec": build_schema(kind.spec_model),
            "status": _status_schema(kind.status_model),
        },
        "required": ["spec"],
    }
    if kind.validations:
        root[VALIDATIONS_KEY] = [rule.to_dict() for rule in kind.validations]
    errors = find_structural_errors(root)
    if errors:
        raise CrdGenError(f"{kind.kind}: schema is not structural: " + "; ".join(errors))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.crd_name,
            "labels": {contract.LABEL_MANAGED_BY: contract.MANAGED_BY},
        },
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": kind.kind + "List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.to_dict() for c in kind.printer_columns],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _status_schema(model: type[BaseModel]) -> Json:
    """Defaulted to `observedGeneration: 0` (the API server defaults it on every read): an
    object the operator has not seen yet is InProgress to kstatus, not Current."""
    return {**build_schema(model), "default": {"observedGeneration": 0}}


def openapi_schema(crd: Mapping[str, Any]) -> Json:
    """The openAPIV3Schema of a generated CRD's (only) version."""
    schema: Json = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or model.__name__).split())


def _normalize(node: Mapping[str, Any], defs: Json, path: str, seen: tuple[str, ...]) -> Json:
    flat, seen = _flatten(node, defs, path, seen)
    out: Json = {}
    for key, value in flat.items():
        if key in _DROPPED or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {
                name: _normalize(child, defs, f"{path}.{name}", seen)
                for name, child in value.items()
            }
        elif key == "items":
            if not isinstance(value, Mapping):
                raise CrdGenError(f"{path}: tuple-typed lists are not supported")
            out[key] = _normalize(value, defs, f"{path}[*]", seen)
        elif key == "prefixItems":
            raise CrdGenError(f"{path}: tuples cannot be expressed in a structural schema")
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, Mapping):
                out[key] = _normalize(value, defs, f"{path}{{*}}", seen)
            # False: the API server prunes unknown fields anyway, and forbids the keyword.
        elif key == "default":
            out[key] = _drop_nulls(value)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema 2020 gives the bound; OpenAPI v3.0 wants the bound plus a flag.
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "format":
            if value in _FORMATS:
                out[key] = value
        elif key == "uniqueItems":
            if value:
                out.setdefault("x-kubernetes-list-type", "set")
        elif key in _KEPT:
            out[key] = value
        else:
            raise CrdGenError(f"{path}: keyword {key!r} has no structural equivalent")
    return _finish_types(out, path)


def _flatten(
    node: Mapping[str, Any], defs: Json, path: str, seen: tuple[str, ...]
) -> tuple[Json, tuple[str, ...]]:
    """Resolve `$ref`, one-member `allOf` and `X | None` unions at the top of a node."""
    current = dict(node)
    while True:
        if "$ref" in current:
            ref = str(current.pop("$ref"))
            name = ref.rsplit("/", 1)[-1]
            if name in seen:
                raise CrdGenError(f"{path}: recursive model {name} cannot be inlined")
            if name not in defs:
                raise CrdGenError(f"{path}: unresolved reference {ref}")
            current = _merge(defs[name], current)
            seen = (*seen, name)
        elif "allOf" in current:
            members = current.pop("allOf")
            if len(members) != 1:
                raise CrdGenError(f"{path}: allOf with several members is not supported")
            current = _merge(members[0], current)
        elif "anyOf" in current or "oneOf" in current:
            members = current.pop("anyOf", None) or current.pop("oneOf")
            current = _collapse_union(members, current, defs, path, seen)
        else:
            return current, seen


def _collapse_union(
    members: Sequence[Mapping[str, Any]],
    siblings: Json,
    defs: Json,
    path: str,
    seen: tuple[str, ...],
) -> Json:
    concrete = [m for m in members if dict(m) != _NULL]
    nullable = len(concrete) < len(members)
    if len(concrete) == 1:
        merged = _merge(concrete[0], siblings)
    else:
        resolved = [_flatten(m, defs, path, seen)[0] for m in concrete]
        if sorted(str(m.get("type")) for m in resolved) != ["integer", "string"]:
            raise CrdGenError(
                f"{path}: only `X | None` and `int | str` unions have a structural form"
            )
        # int-or-string: string constraints move up (the API server applies them to strings).
        string = next(m for m in resolved if m.get("type") == "string")
        merged = {k: v for k, v in string.items() if k != "type"}
        merged.update(siblings)
        merged["x-kubernetes-int-or-string"] = True
    if nullable:
        merged["nullable"] = True
    return merged


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> Json:
    """Overlay a field's own keywords on a referenced definition; rules accumulate."""
    merged = {**base, **overlay}
    rules = [*base.get(VALIDATIONS_KEY, []), *overlay.get(VALIDATIONS_KEY, [])]
    if rules:
        merged[VALIDATIONS_KEY] = rules
    return merged


def _finish_types(out: Json, path: str) -> Json:
    free = out.get("x-kubernetes-preserve-unknown-fields") or out.get("x-kubernetes-int-or-string")
    if "type" not in out and not free:
        if "enum" in out:
            raise CrdGenError(f"{path}: enum values of mixed types cannot be typed")
        # `Any`: keep whatever the user sends.
        out["x-kubernetes-preserve-unknown-fields"] = True
    if isinstance(out.get("type"), list) or out.get("type") == "null":
        raise CrdGenError(f"{path}: type {out['type']!r} cannot be expressed")
    return out


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
