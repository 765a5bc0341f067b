"""From watched objects to the outbox (controllers/notify.py), with the real SQLite outbox: an
object's implied events are enqueued once for the sinks that want them, a watch event of the
same state costs nothing, a deletion implies model.deleted, and what is stored comes back as
the CloudEvent each sink's mode and format asks for."""

from __future__ import annotations

import json
from pathlib import Path

from mlkube.contract import KIND_MODEL
from mlkube.controllers.notify import Notifier, encode_stored
from mlkube.outbox.model import SinkConfig, StoredEvent, Target
from mlkube.outbox.store import Outbox
from support.event_objects import ready_model

NOW = 1_772_355_600.0  # 2026-03-01T09:00:00Z, the fixtures' T0


def _everyone(event_type: str, namespace: str) -> list[str]:
    return ["all"] + (["verified"] if event_type.endswith("verified.v1") else [])


def test_implied_events_are_enqueued_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", clock=lambda: NOW)
    notifier = Notifier(outbox, lambda: NOW)
    model = ready_model()
    done = notifier.notice(KIND_MODEL, model, _everyone)
    assert done is not None and done.new == 2
    assert outbox.pending() == {"all": 2, "verified": 1}
    # The same state again (a label, our own status write): not even a transaction.
    assert (
        notifier.notice(KIND_MODEL, {**model, "metadata": {**model["metadata"]}}, _everyone) is None
    )
    # A restarted operator (new memo) offers it again: the outbox knows the ids.
    again = Notifier(outbox, lambda: NOW).notice(KIND_MODEL, model, _everyone)
    assert again is not None and again.new == 0
    assert outbox.pending() == {"all": 2, "verified": 1}


def test_a_deleted_model_implies_model_deleted(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", clock=lambda: NOW)
    notifier = Notifier(outbox, lambda: NOW)
    model = ready_model()
    notifier.notice(KIND_MODEL, model, _everyone)
    done = notifier.deleted(KIND_MODEL, model, _everyone)
    assert done.new == 1 and outbox.pending() == {"all": 3, "verified": 1}


def test_stored_events_encode_per_sink(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", clock=lambda: NOW)
    Notifier(outbox, lambda: NOW).notice(KIND_MODEL, ready_model(), lambda t, n: ["all"])
    [due, *_] = outbox.due("all", NOW + 1, 10, set())
    event: StoredEvent = due.event
    binary = encode_stored(event, SinkConfig("s", Target("http://x/")))
    assert binary is not None and binary.headers["ce-type"] == event.type
    assert binary.headers["ce-id"] == event.id and binary.headers["ce-mlkubeuid"] == "uid-model-v4"
    structured = encode_stored(event, SinkConfig("s", Target("http://x/"), mode="structured"))
    assert structured is not None and json.loads(structured.body)["id"] == event.id
    azure = encode_stored(event, SinkConfig("s", Target("http://x/"), format="azureml"))
    registered = event.type == "dev.mlkube.model.registered.v1"
    assert (azure is not None) == registered  # verified has no Azure ML counterpart
    if azure is not None:
        assert (
            json.loads(azure.body)[0]["eventType"]
            == "Microsoft.MachineLearningServices.ModelRegistered"
        )
