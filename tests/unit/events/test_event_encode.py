"""CloudEvents HTTP messages (binary, structured) parsed back by the real `cloudevents` SDK, and
the HMAC signing headers."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from mlkube.events.encode import (
    SIGNATURE_HEADER,
    SIGNATURE_TIMESTAMP_HEADER,
    binary,
    encode,
    encode_payload,
    header_value,
    sign,
    structured,
    verify,
)
from mlkube.events.extract import implied_events
from mlkube.events.occurrence import Occurrence, epoch_seconds, from_payload, to_payload
from support.event_objects import all_occurrences, ready_model, serving_endpoint


def parse(headers: dict[str, str], body: bytes) -> object:
    return from_http_event(HTTPMessage(headers=headers, body=body))


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_every_occurrence_round_trips_through_the_sdk(mode: str) -> None:
    occurrences = all_occurrences()
    for occurrence in occurrences:
        message = encode(occurrence, mode=mode)  # type: ignore[arg-type]
        assert message is not None
        event = parse(message.headers, message.body)
        assert event.get_id() == occurrence.id  # type: ignore[attr-defined]
        assert event.get_type() == occurrence.type  # type: ignore[attr-defined]
        assert event.get_source() == occurrence.source  # type: ignore[attr-defined]
        assert event.get_subject() == occurrence.subject  # type: ignore[attr-defined]
        assert event.get_specversion() == "1.0"  # type: ignore[attr-defined]
        assert event.get_dataschema() == occurrence.dataschema  # type: ignore[attr-defined]
        assert event.get_data() == dict(occurrence.data)  # type: ignore[attr-defined]
        assert event.get_datacontenttype().startswith("application/json")  # type: ignore[attr-defined]
        time = event.get_time()  # type: ignore[attr-defined]
        assert time is not None and time.tzinfo is not None
        assert time == datetime.datetime.fromisoformat(occurrence.time.replace("Z", "+00:00"))  # type: ignore[union-attr]
        for name, value in occurrence.extensions.items():
            got = event.get_extension(name)  # type: ignore[attr-defined]
            # Binary mode carries every attribute as text; JSON keeps the integer.
            assert got == (str(value) if mode == "binary" else value)


def test_binary_headers_and_body() -> None:
    [registered, _] = implied_events("Model", ready_model())
    message = binary(registered)
    assert message.headers["content-type"] == "application/json"
    assert message.headers["ce-specversion"] == "1.0"
    assert message.headers["ce-id"] == registered.id
    assert message.headers["ce-type"] == "dev.mlkube.model.registered.v1"
    assert message.headers["ce-subject"] == "Model/team-a/credit-risk-v4"
    assert message.headers["ce-mlkubegeneration"] == "1"
    assert "ce-datacontenttype" not in message.headers  # Content-Type carries it
    assert json.loads(message.body) == dict(registered.data)


def test_structured_body_is_the_whole_event() -> None:
    occurrence = implied_events("OnlineEndpoint", serving_endpoint())[0]
    message = structured(occurrence)
    assert message.headers["content-type"].startswith("application/cloudevents+json")
    doc = json.loads(message.body)
    assert doc == occurrence.to_cloudevent()
    assert Occurrence.from_cloudevent(doc) == occurrence  # how the outbox reads it back


def test_header_values_are_percent_encoded_as_the_binding_says() -> None:
    assert header_value("Model/team-a/x") == "Model/team-a/x"
    assert header_value('a b"c%d') == "a%20b%22c%25d"
    assert header_value("drift ü") == "drift%20%C3%BC"
    occurrence = Occurrence(
        type="dev.mlkube.model.deleted.v1", id="1", source="/s", subject="Model/ns/a b",
        time="2026-03-01T09:00:00Z", data={"name": "ü", "version": "1"},
    )  # fmt: skip
    message = binary(occurrence)
    assert message.headers["ce-subject"] == "Model/ns/a%20b"
    event = parse(message.headers, message.body)
    assert event.get_subject() == "Model/ns/a b"  # type: ignore[attr-defined]
    assert event.get_data() == {"name": "ü", "version": "1"}  # type: ignore[attr-defined]


def test_signing_headers_and_verification() -> None:
    key = b"sink-key"
    message = sign(binary(implied_events("Model", ready_model())[0]), key, timestamp=1_772_000_000)
    stamp = message.headers[SIGNATURE_TIMESTAMP_HEADER]
    assert stamp == "1772000000"
    expected = hmac.new(key, b"1772000000." + message.body, hashlib.sha256).hexdigest()
    assert message.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert verify(message.headers, message.body, key, now=1_772_000_100)
    lowered = {k.lower(): v for k, v in message.headers.items()}
    assert verify(lowered, message.body, key, now=1_772_000_000)
    assert not verify(message.headers, message.body + b" ", key, now=1_772_000_000)
    assert not verify(message.headers, message.body, b"other", now=1_772_000_000)
    assert not verify(message.headers, message.body, key, now=1_772_000_000 + 301)  # replay
    assert not verify({}, message.body, key, now=1_772_000_000)
    # The signed message is still a CloudEvent (extra headers are not ce-*).
    assert parse(message.headers, message.body).get_id()  # type: ignore[attr-defined]


def test_azureml_sinks_get_nothing_for_types_azure_has_not() -> None:
    traffic = [
        o for o in implied_events("OnlineEndpoint", serving_endpoint())
        if o.type == "dev.mlkube.endpoint.traffic.changed.v1"
    ]  # fmt: skip
    assert traffic and encode(traffic[0], format="azureml") is None
    assert encode(traffic[0], format="cloudevents") is not None


def test_stored_payload_round_trip_and_encoding_from_it() -> None:
    for occurrence in all_occurrences():
        payload = to_payload(occurrence)
        assert from_payload(payload) == occurrence
        for mode in ("binary", "structured"):
            assert encode_payload(payload, mode) == encode(occurrence, mode=mode)  # type: ignore[arg-type]
        assert encode_payload(payload, "binary", "azureml") == encode(occurrence, format="azureml")
    occurrence = implied_events("Model", ready_model())[0]
    assert (
        epoch_seconds(occurrence.time)
        == datetime.datetime(2026, 3, 1, 9, 1, tzinfo=datetime.UTC).timestamp()
    )
    assert epoch_seconds("2026-03-01T09:30:00.000Z") == epoch_seconds("2026-03-01T09:30:00Z")
    assert epoch_seconds(None) is None and epoch_seconds("yesterday") is None
    with pytest.raises(ValueError):
        from_payload(b"[]")
