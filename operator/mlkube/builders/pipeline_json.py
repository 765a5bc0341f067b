"""Strict JSON shapes for the pipeline step contract (pipeline_contract, pipeline_summary):
one error type and the field checks both parsers share. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


class ContractError(ValueError):
    """A manifest or summary that does not have the agreed shape."""


def json_fields(
    body: object, what: str, *, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ContractError(f"{what} must be a JSON object")
    unknown = sorted(set(body) - set(required) - set(optional))
    missing = [name for name in required if name not in body]
    if unknown or missing:
        raise ContractError(f"{what}: unknown fields {unknown}, missing fields {missing}")
    return dict(body)


def parse_json_fields(
    text: str | bytes,
    what: str,
    cap: int,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> dict[str, Any]:
    """`text` (at most `cap` long) parsed as a JSON object with these fields (json_fields)."""
    if len(text) > cap:
        raise ContractError(f"{what} is larger than {cap} bytes")
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ContractError(f"{what} is not JSON: {exc}") from exc
    return json_fields(body, what, required=required, optional=optional)


def json_list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise ContractError(f"{what} must be a JSON array")
    return value


def text_field(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ContractError(f"{what} must be a non-empty string, got {value!r}")
    return value
