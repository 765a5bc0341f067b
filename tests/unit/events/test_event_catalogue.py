"""The event catalogue: names, published schemas (docs/events/), the table in the notes, and
every event the extractor implies validating against its published schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from mlkube.api.render import GENERATED_MARKER
from mlkube.events.catalogue import CATALOGUE, EVENT_TYPES, lookup, type_matches
from mlkube.events.schemas import INDEX_PATH, catalogue_rows, data_schema, render_schema_files
from support.event_objects import all_occurrences

ROOT = Path(__file__).resolve().parents[3]
TYPE_PATTERN = re.compile(r"^dev\.mlkube\.[a-z]+(\.[a-z]+)+\.v[1-9][0-9]*$")


def test_types_are_versioned_unique_and_named_after_their_entry() -> None:
    assert len(set(EVENT_TYPES)) == len(CATALOGUE) == 18
    for event in CATALOGUE:
        assert TYPE_PATTERN.match(event.type), event.type
        assert event.type == f"dev.mlkube.{event.name}.v{event.version}"
        assert lookup(event.type) is event
    with pytest.raises(KeyError):
        lookup("dev.mlkube.model.registered.v9")


def test_published_schemas_are_the_generated_ones_and_valid_json_schema() -> None:
    files = render_schema_files(GENERATED_MARKER)
    assert set(files) == {f"docs/events/{e.schema_file}" for e in CATALOGUE} | {INDEX_PATH}
    for event in CATALOGUE:
        rel = f"docs/events/{event.schema_file}"
        on_disk = (ROOT / rel).read_text(encoding="utf-8")
        assert on_disk == files[rel], f"{rel} is stale: run hack/generate"
        assert GENERATED_MARKER in on_disk.splitlines()[0]  # hack/generate owns the file
        schema = json.loads(on_disk)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"] == event.dataschema and schema["title"] == event.type
        assert {k: v for k, v in schema.items() if k != "$comment"} == data_schema(event)


def test_notes_table_is_the_catalogue() -> None:
    notes = (ROOT / "docs/notifications.md").read_text(encoding="utf-8").splitlines()
    start = notes.index("| type | when | data |")
    assert notes[start : start + len(CATALOGUE) + 2] == catalogue_rows()


def test_every_type_is_implied_by_some_state_and_validates_against_its_schema() -> None:
    occurrences = all_occurrences()
    assert {o.type for o in occurrences} == set(EVENT_TYPES)
    schemas = {
        e.type: json.loads((ROOT / f"docs/events/{e.schema_file}").read_text(encoding="utf-8"))
        for e in CATALOGUE
    }
    for occurrence in occurrences:
        jsonschema.validate(dict(occurrence.data), schemas[occurrence.type])
        assert occurrence.dataschema == lookup(occurrence.type).dataschema


def test_a_schema_rejects_data_of_the_wrong_shape() -> None:
    schema = data_schema(lookup("dev.mlkube.model.deleted.v1"))
    jsonschema.validate({"name": "credit-risk", "version": "4"}, schema)
    for bad in ({"name": "credit-risk"}, {"name": 4, "version": "4"}, {"version": "4"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    # A field a later producer of the same version adds does not break older consumers.
    jsonschema.validate({"name": "a", "version": "4", "addedLater": 1}, schema)


def test_type_filter() -> None:
    registered = "dev.mlkube.model.registered.v1"
    assert type_matches(registered, [])
    assert type_matches(registered, ["dev.mlkube.model.*"])
    assert type_matches(registered, ["dev.mlkube.rollout.aborted.v1", registered])
    assert not type_matches(registered, ["dev.mlkube.rollout.*"])
    assert not type_matches(registered, ["dev.mlkube.model.registered"])
