"""The operator config's default sink as the delivery engine gets it (handlers/notifications.py):
its fingerprint — persisted in the outbox after a 410 — is a hash, never the URL itself (which
may carry credentials), and changes with any setting, so a changed config lifts a 410 stop."""

from __future__ import annotations

from mlkube.builders.operator_config import parse_operator_config
from mlkube.handlers.notifications import default_sink
from mlkube.outbox.model import SinkConfig

URI = "https://user:s3cret@events.example.com/in?token=abc"


def sink_of(**env: str) -> SinkConfig | None:
    config = parse_operator_config({"KUBERNETES_SERVICE_HOST": "10.0.0.1", **env})
    return default_sink(config)


def test_no_default_sink_without_a_uri() -> None:
    assert sink_of() is None


def test_the_fingerprint_hides_the_uri_and_follows_every_setting() -> None:
    sink = sink_of(MLKUBE_EVENT_SINK_URI=URI)
    assert sink is not None
    assert sink.target.url == URI
    assert "s3cret" not in sink.fingerprint and "abc" not in sink.fingerprint
    assert "events.example.com" not in sink.fingerprint
    others = [
        sink_of(MLKUBE_EVENT_SINK_URI=URI + "x"),
        sink_of(MLKUBE_EVENT_SINK_URI=URI, MLKUBE_EVENT_SINK_MODE="structured"),
        sink_of(MLKUBE_EVENT_SINK_URI=URI, MLKUBE_EVENT_SINK_FORMAT="azureml"),
    ]
    prints = {sink.fingerprint, *(o.fingerprint for o in others if o is not None)}
    assert len(prints) == 4
    assert sink_of(MLKUBE_EVENT_SINK_URI=URI).fingerprint == sink.fingerprint  # stable
