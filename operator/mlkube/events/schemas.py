"""JSON Schemas of the catalogue's data (docs/events/<type>.json) and the catalogue table.

Rendered by hack/generate (through mlkube.api.render) and checked by hack/verify, so the
published schemas are always those of the code; the schema's `$id` is the events' `dataschema`.
"""

from __future__ import annotations

import json
from typing import Any, Final

from mlkube.events.catalogue import CATALOGUE, EventType

SCHEMAS_DIR: Final = "docs/events"
INDEX_PATH: Final = f"{SCHEMAS_DIR}/README.md"
DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"


def data_schema(event: EventType) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the event's data. Unknown fields are allowed: a
    version only ever gains fields, and a consumer validating with this schema must accept
    data from a newer producer of the same version."""
    schema = _open(event.data.model_json_schema(by_alias=True, mode="serialization"))
    return {
        "$schema": DRAFT,
        "$id": event.dataschema,
        "title": event.type,
        **{k: v for k, v in schema.items() if k != "title"},
    }


def _open(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _open(v) for k, v in node.items() if k != "additionalProperties" or v}
    if isinstance(node, list):
        return [_open(v) for v in node]
    return node


def data_fields(event: EventType) -> list[str]:
    """Top-level data field names, as on the wire."""
    return [f.alias or name for name, f in event.data.model_fields.items()]


def catalogue_rows() -> list[str]:
    """The catalogue as Markdown table rows (type | when | data) — docs/notifications.md §2
    holds exactly these (a unit test checks it)."""
    rows = ["| type | when | data |", "|---|---|---|"]
    for event in CATALOGUE:
        rows.append(f"| {event.type} | {event.when} | {', '.join(data_fields(event))} |")
    return rows


def render_schema_files(marker: str) -> dict[str, str]:
    """docs/events/*.json and the index; `marker` starts each file (generated-file marker)."""
    files: dict[str, str] = {}
    for event in CATALOGUE:
        body = json.dumps(data_schema(event), indent=2, sort_keys=True, ensure_ascii=False)
        # The marker as a `$comment` on the first line keeps the file valid JSON (Schema).
        first = json.dumps({"$comment": f"{marker}; do not edit"})[:-1]
        files[f"{SCHEMAS_DIR}/{event.schema_file}"] = f"{first},\n{body[2:]}\n"
    lines = [
        f"<!-- {marker} from operator/mlkube/events/; do not edit -->",
        "# Event catalogue",
        "",
        "The CloudEvents mlkube emits (docs/notifications.md). Each event's `dataschema` is the",
        "URL of its JSON Schema here.",
        "",
        "| type | kind | when | schema |",
        "|---|---|---|---|",
    ]
    for event in CATALOGUE:
        link = f"[{event.schema_file}]({event.schema_file})"
        lines.append(f"| {event.type} | {event.kind} | {event.when} | {link} |")
    files[INDEX_PATH] = "\n".join(lines) + "\n"
    return files
