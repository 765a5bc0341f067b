"""Events from mlkube.events stored once and encoded per sink at send time."""

from __future__ import annotations

from datetime import datetime

from mlkube.events.encode import FORMATS, MODES, encode
from mlkube.events.occurrence import EXT_UID
from mlkube.outbox.codec import encode_stored, to_outbox
from mlkube.outbox.model import SinkConfig, StoredEvent, Target
from support.event_objects import all_occurrences


def test_stored_events_encode_exactly_as_the_live_ones_for_every_mode_and_format() -> None:
    for event in all_occurrences():
        occ = to_outbox(event, now=123.0)
        assert (occ.id, occ.type) == (event.id, event.type)
        assert occ.uid == event.extensions[EXT_UID]
        if event.time:
            assert occ.time == datetime.fromisoformat(event.time).timestamp()
        stored = StoredEvent(occ.id, occ.type, occ.payload)
        for mode in MODES:
            for fmt in FORMATS:
                sink = SinkConfig("s", Target("http://x"), mode=mode, format=fmt)
                live = encode(event, mode, fmt)
                got = encode_stored(stored, sink)
                if live is None:
                    assert got is None  # an azureml sink gets nothing for this type
                else:
                    assert got is not None
                    assert (dict(got.headers), got.body) == (live.headers, live.body)


def test_azureml_sinks_skip_types_without_an_azure_counterpart() -> None:
    skipped = [
        e for e in all_occurrences()
        if encode_stored(
            StoredEvent(e.id, e.type, to_outbox(e).payload),
            SinkConfig("s", Target("http://x"), format="azureml"),
        ) is None
    ]  # fmt: skip
    assert skipped and all("rollout" in e.type or "traffic" in e.type or "model.verified" in e.type
                           or "model.deleted" in e.type or "drift.ended" in e.type
                           for e in skipped)  # fmt: skip


def test_an_event_without_a_time_gets_now() -> None:
    event = all_occurrences()[0]
    untimed = type(event)(**{**event.__dict__, "time": None})
    assert to_outbox(untimed, now=42.0).time == 42.0
