"""Notification settings of the operator (builders/notify_config.py): the default sink, the
outbox path and bounds, parsed once with the rest of the operator config."""

from __future__ import annotations

import pytest

from mlkube.builders.notify_config import DEFAULT_OUTBOX_PATH, DefaultSink, parse_notify_config
from mlkube.builders.operator_config import OperatorConfigError, parse_operator_config


def test_defaults_in_a_pod() -> None:
    config = parse_operator_config({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}).notifications
    assert config.default_sink is None
    assert config.outbox_path == DEFAULT_OUTBOX_PATH == "/var/lib/mlkube/outbox.db"
    assert (config.replay_window, config.outbox_max_events) == (600.0, 100_000)


def test_outside_a_pod_the_outbox_is_in_the_users_state_directory() -> None:
    config = parse_notify_config({"HOME": "/home/me"}, in_cluster=False)
    assert config.outbox_path == "/home/me/.local/state/mlkube/outbox.db"
    config = parse_notify_config({"XDG_STATE_HOME": "/s"}, in_cluster=False)
    assert config.outbox_path == "/s/mlkube/outbox.db"


def test_every_setting() -> None:
    config = parse_notify_config(
        {
            "MLKUBE_EVENT_SINK_URI": "https://events.example.com/in",
            "MLKUBE_EVENT_SINK_FORMAT": "azureml",
            "MLKUBE_EVENT_SINK_MODE": "structured",
            "MLKUBE_OUTBOX_PATH": "/data/o.db",
            "MLKUBE_EVENTS_REPLAY_WINDOW": "1h30m",
            "MLKUBE_OUTBOX_MAX_EVENTS": "10",
        },
        in_cluster=True,
    )
    sink = DefaultSink("https://events.example.com/in", "azureml", "structured")
    assert config.default_sink == sink
    assert (config.outbox_path, config.replay_window, config.outbox_max_events) == (
        "/data/o.db", 5400.0, 10,
    )  # fmt: skip
    zero = parse_notify_config({"MLKUBE_EVENTS_REPLAY_WINDOW": "0"}, in_cluster=True)
    assert zero.replay_window == 0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MLKUBE_EVENT_SINK_URI", "s3://b/e", "must be an http(s):// URL"),
        ("MLKUBE_EVENT_SINK_FORMAT", "json", "use one of cloudevents, azureml"),
        ("MLKUBE_EVENT_SINK_MODE", "batched", "use one of binary, structured"),
        ("MLKUBE_OUTBOX_PATH", "outbox.db", "must be an absolute path"),
        ("MLKUBE_EVENTS_REPLAY_WINDOW", "ten minutes", "MLKUBE_EVENTS_REPLAY_WINDOW"),
        ("MLKUBE_OUTBOX_MAX_EVENTS", "0", "must be a positive integer"),
    ],
)
def test_bad_values_fail_the_operator_config(key: str, value: str, message: str) -> None:
    with pytest.raises(OperatorConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_operator_config({key: value})


def test_a_bad_sink_uri_is_refused_without_echoing_its_credentials() -> None:
    with pytest.raises(OperatorConfigError) as refused:
        parse_operator_config({"MLKUBE_EVENT_SINK_URI": "htps://ops:hunter2@events.example.com/"})
    assert "must be an http(s):// URL" in str(refused.value)
    assert "hunter2" not in str(refused.value)
