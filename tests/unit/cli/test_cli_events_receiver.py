"""The `mlkube events listen` receiver reads exactly what the operator sends: every catalogue
occurrence encoded by mlkube.events.encode (binary, structured, azureml) parses back to the same
attributes and data, over a real HTTP socket too; what is not an event gets a 400."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from mlkube.cli.events_receiver import NotAnEvent, ReceivedEvent, Receiver, parse_request
from mlkube.events.encode import encode
from mlkube.events.occurrence import Occurrence
from support.event_objects import all_occurrences


@pytest.fixture(scope="module")
def occurrences() -> list[Occurrence]:
    return all_occurrences()


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_every_occurrence_parses_back(occurrences: list[Occurrence], mode: str) -> None:
    assert len({o.type for o in occurrences}) == 18  # the whole catalogue
    for occurrence in occurrences:
        message = encode(occurrence, mode=mode)  # type: ignore[arg-type]
        assert message is not None
        [event] = parse_request(message.headers, message.body)
        assert (event.format, event.mode) == ("cloudevents", mode)
        assert (event.type, event.id, event.subject, event.time) == (
            occurrence.type, occurrence.id, occurrence.subject, occurrence.time
        )  # fmt: skip
        assert event.attributes["source"] == occurrence.source
        assert event.data == dict(occurrence.data)
        for name, value in occurrence.extensions.items():
            # Binary mode carries every attribute as (percent-encoded) text.
            assert event.attributes[name] == (str(value) if mode == "binary" else value)


def test_binary_header_values_are_percent_decoded() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/s", "ce-type": "t",
               "ce-subject": "Model/ns/caf%C3%A9%20v1",
               "content-type": "application/json"}  # fmt: skip
    [event] = parse_request(headers, b'{"a": 1}')
    assert event.subject == "Model/ns/café v1"
    assert event.data == {"a": 1}


def test_azureml_deliveries_parse_as_event_grid_events(occurrences: list[Occurrence]) -> None:
    azure_types = set()
    for occurrence in occurrences:
        message = encode(occurrence, format="azureml")
        if message is None:
            continue
        events = parse_request(message.headers, message.body)
        sent = json.loads(message.body)
        assert [e.to_json() for e in events] == sent
        assert all(e.format == "azureml" and e.type == s["eventType"]
                   for e, s in zip(events, sent, strict=True))  # fmt: skip
        azure_types |= {e.type for e in events}
    assert len(azure_types) == 5


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"content-type": "text/plain"}, b"hello", "not a CloudEvent"),
        ({"content-type": "application/cloudevents+json"}, b"{nope", "not JSON"),
        ({"content-type": "application/cloudevents+json"}, b'{"id": "1"}', "specversion"),
        ({"ce-specversion": "1.0", "ce-id": "1"}, b"", "source, type"),
        ({"content-type": "application/json"}, b'{"a": 1}', "Event Grid"),
    ],
)
def test_what_is_not_an_event_is_refused(
    headers: dict[str, str], body: bytes, message: str
) -> None:
    with pytest.raises(NotAnEvent, match=message):
        parse_request(headers, body)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver("127.0.0.1", 0)
    r.start()
    yield r
    r.close()


def post(port: int, headers: dict[str, str], body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_receiver_answers_204_and_queues_events(
    receiver: Receiver, occurrences: list[Occurrence]
) -> None:
    for mode in ("binary", "structured"):
        message = encode(occurrences[0], mode=mode)  # type: ignore[arg-type]
        assert message is not None
        assert post(receiver.port, message.headers, message.body) == 204
        event: ReceivedEvent = receiver.events.get(timeout=5)
        assert (event.id, event.mode) == (occurrences[0].id, mode)
    assert post(receiver.port, {"content-type": "text/plain"}, b"hi") == 400
    assert "not a CloudEvent" in receiver.rejected.get(timeout=5)
    assert receiver.events.empty()


def test_receiver_reads_chunked_bodies_and_answers_the_webhook_handshake(
    receiver: Receiver, occurrences: list[Occurrence]
) -> None:
    message = encode(occurrences[1], mode="structured")
    assert message is not None
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    conn.request("POST", "/", body=iter([message.body[:10], message.body[10:]]),
                 headers=message.headers, encode_chunked=True)  # fmt: skip
    response = conn.getresponse()
    response.read()
    assert response.status == 204
    assert receiver.events.get(timeout=5).id == occurrences[1].id
    conn.request("OPTIONS", "/", headers={"WebHook-Request-Origin": "mlkube.example"})
    response = conn.getresponse()
    response.read()
    assert (response.status, response.getheader("WebHook-Allowed-Origin")) == (
        200, "mlkube.example"
    )  # fmt: skip
    conn.close()
