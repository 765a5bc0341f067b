"""The EventSink kind on the pydantic side (the CRD side is tests/integration/
test_event_sink_crd.py): one destination, ISO-8601 durations, type filters, Knative's defaults,
and the ISO-8601 parser the delivery side uses."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from mlkube.api.duration import ISO_DURATION_PATTERN, parse_iso_duration
from mlkube.api.event_sink import MSG_ONE_DESTINATION, TYPE_PATTERN, EventSinkSpec
from mlkube.api.kinds import find_kind


def _spec(**fields: Any) -> EventSinkSpec:
    return EventSinkSpec.model_validate({"uri": "http://127.0.0.1:9/e", **fields})


def test_defaults_are_knatives_shape() -> None:
    spec = _spec(delivery={})
    assert (spec.mode, spec.format, spec.types, spec.namespaces) == (
        "binary", "cloudevents", [], [],
    )  # fmt: skip
    assert spec.delivery is not None
    assert spec.delivery.model_dump(by_alias=True, exclude_none=True) == {
        "retry": 10, "backoffPolicy": "exponential", "backoffDelay": "PT0.5S", "timeout": "PT10S",
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"uri": "http://127.0.0.1:9/e", "ref": {"name": "receiver"}},
        {"uri": "http://127.0.0.1:9/e", "delivery": {"deadLetterSink": {}}},
    ],
)
def test_exactly_one_destination(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=MSG_ONE_DESTINATION):
        EventSinkSpec.model_validate(body)
    rule = EventSinkSpec.model_json_schema()["x-kubernetes-validations"][0]
    assert rule == {"rule": "has(self.uri) != has(self.ref)", "message": MSG_ONE_DESTINATION}


def test_dead_letter_sink_is_a_destination_with_the_same_rule() -> None:
    spec = _spec(delivery={"deadLetterSink": {"ref": {"name": "dlq", "port": 8080}}})
    assert spec.delivery and spec.delivery.dead_letter_sink and spec.delivery.dead_letter_sink.ref
    schema = find_kind("EventSink").spec_model.model_json_schema()
    dlq = schema["$defs"]["Destination"]
    assert dlq["x-kubernetes-validations"][0]["rule"] == "has(self.uri) != has(self.ref)"


@pytest.mark.parametrize("uri", ["ftp://x/e", "http://", "s3://bucket/e", "http://a b"])
def test_sink_uri_is_http(uri: str) -> None:
    with pytest.raises(ValidationError):
        _spec(uri=uri)


@pytest.mark.parametrize("good", ["*", "dev.mlkube.model.*", "dev.mlkube.rollout.aborted.v1"])
def test_type_filters(good: str) -> None:
    assert re.fullmatch(TYPE_PATTERN, good)
    assert _spec(types=[good]).types == [good]


@pytest.mark.parametrize("bad", ["dev.*.v1", "**", "dev mlkube", ".dev"])
def test_type_filters_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        _spec(types=[bad])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT0.5S", timedelta(seconds=0.5)),
        ("PT10S", timedelta(seconds=10)),
        ("PT1M30S", timedelta(minutes=1, seconds=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2D", timedelta(days=2)),
        ("PT0.001S", timedelta(milliseconds=1)),
    ],
)
def test_iso_durations(text: str, expected: timedelta) -> None:
    assert parse_iso_duration(text) == expected
    assert re.fullmatch(ISO_DURATION_PATTERN, text)
    assert _spec(delivery={"backoffDelay": text}).delivery is not None


@pytest.mark.parametrize(
    "text", ["P", "PT", "P1DT", "PT0S", "PT0.0S", "1s", "PT1.5M", "P1W", "PT-1S"]
)
def test_iso_durations_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_duration(text)
    with pytest.raises(ValidationError):
        _spec(delivery={"timeout": text})


def test_iso_duration_bounded() -> None:
    with pytest.raises(ValueError, match="at most 3650d"):
        parse_iso_duration("P99999D")
