"""HTTP messages for an occurrence: CloudEvents 1.0 binary and structured content modes, the
Azure Event Grid form (`format: azureml`, mlkube.events.azureml), and HMAC signing.

A message is (headers, body bytes); the delivery posts it as is. Binary mode: the attributes
are `ce-*` headers (values percent-encoded as the HTTP binding says) and the body is the data;
structured mode: the body is the whole event as `application/cloudevents+json`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

import orjson

from mlkube.events.azureml import to_event_grid
from mlkube.events.occurrence import CONTENT_TYPE_JSON, Occurrence, from_payload

Mode = Literal["binary", "structured"]
Format = Literal["cloudevents", "azureml"]
MODES: Final = ("binary", "structured")
FORMATS: Final = ("cloudevents", "azureml")
CONTENT_TYPE_STRUCTURED: Final = "application/cloudevents+json; charset=utf-8"
SIGNATURE_HEADER: Final = "X-Mlkube-Signature"
SIGNATURE_TIMESTAMP_HEADER: Final = "X-Mlkube-Signature-Timestamp"
SIGNATURE_TOLERANCE_SECONDS: Final = 300
# Event Grid's webhook deliveries carry this header (receivers dispatch on it).
EVENT_GRID_TYPE_HEADER: Final = "aeg-event-type"
# Characters the HTTP binding leaves as is in a ce-* header value (printable ASCII but space,
# '"' and '%'); everything else is percent-encoded as UTF-8.
_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


@dataclass(frozen=True)
class Message:
    """An HTTP request body and its headers (besides Content-Length and Host)."""

    headers: dict[str, str]
    body: bytes


def header_value(value: object) -> str:
    return quote(str(value), safe=_SAFE)


def _json(value: object) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def binary(occurrence: Occurrence) -> Message:
    """Binary content mode: attributes as ce-* headers, the data as the JSON body."""
    headers = {"content-type": CONTENT_TYPE_JSON}
    for name, value in occurrence.attributes().items():
        if name == "datacontenttype":
            continue  # carried by Content-Type
        headers[f"ce-{name}"] = header_value(value)
    return Message(headers, _json(dict(occurrence.data)))


def structured(occurrence: Occurrence) -> Message:
    """Structured content mode: the whole event as one JSON object."""
    return Message({"content-type": CONTENT_TYPE_STRUCTURED}, _json(occurrence.to_cloudevent()))


def azureml(occurrence: Occurrence) -> Message | None:
    """Event Grid schema (a JSON array), None for types Azure ML has no counterpart of."""
    events = to_event_grid(occurrence)
    if not events:
        return None
    headers = {"content-type": CONTENT_TYPE_JSON, EVENT_GRID_TYPE_HEADER: "Notification"}
    return Message(headers, _json(events))


def encode(
    occurrence: Occurrence, mode: Mode = "binary", format: Format = "cloudevents"
) -> Message | None:
    """The message a sink with this mode and format gets; None when it gets nothing."""
    if format == "azureml":
        return azureml(occurrence)
    return structured(occurrence) if mode == "structured" else binary(occurrence)


def encode_payload(
    payload: bytes, mode: str = "binary", format: str = "cloudevents"
) -> Message | None:
    """`encode` for a stored payload (`occurrence.to_payload`) and a sink's mode and format as
    written in its spec; unknown values fall back to binary CloudEvents."""
    occurrence = from_payload(payload)
    if format == "azureml":
        return azureml(occurrence)
    return structured(occurrence) if mode == "structured" else binary(occurrence)


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`."""
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def sign(message: Message, key: bytes, timestamp: int) -> Message:
    """The message with the signing headers (docs/notifications.md §4) added."""
    headers = {
        **message.headers,
        SIGNATURE_TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(key, timestamp, message.body),
    }
    return Message(headers, message.body)


def verify(
    headers: Mapping[str, str],
    body: bytes,
    key: bytes,
    now: float,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: a fresh timestamp and the HMAC, compared in constant time."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(SIGNATURE_TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(given, signature(key, int(stamp), body))
