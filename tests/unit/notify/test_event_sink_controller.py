"""EventSinks against the in-memory Kube (controllers/event_sink.py): a sink resolved into the
engine's config (Service port, signing key from its Secret, ISO-8601 delivery settings), what
cannot be resolved, and the status written only on change and at most every few seconds."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from mlkube.contract import API_VERSION
from mlkube.controllers.event_sink import StatusKeeper, resolve
from support.fake_kube import DEFAULT_KINDS, FakeKube

NS = "team-a"
KEY = b"s3cret-key"


@dataclass(frozen=True)
class State:
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    last_delivered_at: float | None = None
    last_failure: Any = None
    throttled_until: float | None = None
    gone: bool = False


def _kube() -> FakeKube:
    kube = FakeKube(kinds={*DEFAULT_KINDS, (API_VERSION, "EventSink")})
    kube.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "rx", "namespace": NS},
              "spec": {"ports": [{"name": "http", "port": 8080}]}})  # fmt: skip
    kube.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k", "namespace": NS},
              "data": {"key": base64.b64encode(KEY).decode()}})  # fmt: skip
    return kube


SPEC = {
    "ref": {"kind": "Service", "name": "rx", "path": "/events"},
    "mode": "structured",
    "format": "azureml",
    "signing": {"secretRef": {"name": "k", "key": "key"}},
    "delivery": {"retry": 3, "backoffPolicy": "linear", "backoffDelay": "PT0.25S",
                 "timeout": "PT1M", "deadLetterSink": {"uri": "http://dlq.example/e"}},
}  # fmt: skip


def test_a_sink_resolves_into_the_engines_config() -> None:
    res = resolve(_kube(), NS, "ops", SPEC, "cluster.local")
    assert res.problem is None and res.config is not None
    config = res.config
    assert config.key == "team-a/ops"
    assert config.target.url == "http://rx.team-a.svc.cluster.local:8080/events"
    assert (config.mode, config.format, config.retry, config.backoff_policy) == (
        "structured", "azureml", 3, "linear",
    )  # fmt: skip
    assert (config.backoff_delay, config.timeout) == (0.25, 60.0)
    assert config.dead_letter is not None and config.dead_letter.url == "http://dlq.example/e"
    assert config.signing_key == KEY
    assert res.urls == (config.target.url, "http://dlq.example/e")
    # Knative's defaults when delivery is omitted; the fingerprint follows the spec.
    plain = resolve(_kube(), NS, "ops", {"uri": "http://127.0.0.1:1/e"}, "cluster.local").config
    assert plain is not None and (plain.retry, plain.backoff_delay, plain.timeout) == (10, 0.5, 10)
    assert plain.signing_key is None and plain.fingerprint != config.fingerprint


def test_what_cannot_be_resolved_says_why() -> None:
    kube = _kube()
    missing_key = {**SPEC, "signing": {"secretRef": {"name": "k", "key": "other"}}}
    res = resolve(kube, NS, "ops", missing_key, "cluster.local")
    assert res.config is None and res.problem is not None
    assert res.problem.reason == "SecretNotFound" and "no key 'other'" in res.problem.message
    gone = resolve(kube, NS, "ops", {"ref": {"name": "nope"}}, "cluster.local")
    assert gone.problem is not None and gone.problem.reason == "ServiceNotFound"
    # The resolved URL is still shown when only the key is missing.
    assert res.urls[0] == "http://rx.team-a.svc.cluster.local:8080/events"


SINK = {"apiVersion": API_VERSION, "kind": "EventSink",
        "metadata": {"name": "ops", "namespace": NS}, "spec": {"uri": "http://x/e"}}  # fmt: skip


def test_status_is_written_on_change_only_and_rate_limited() -> None:
    kube = _kube()
    kube.put(SINK)
    now = [1_796_018_400.0]
    keeper = StatusKeeper(kube, lambda: now[0], min_interval=5.0)
    keeper.seen("u1", NS, "ops", 1, {"observedGeneration": 0})
    keeper.resolved("u1", resolve(kube, NS, "ops", {"uri": "http://x/e"}, "cluster.local"))
    assert keeper.sync("u1", State(delivered=1, last_delivered_at=now[0]))
    status = kube.stored(API_VERSION, "EventSink", "ops", NS)["status"]
    assert status["delivered"] == 1 and status["observedGeneration"] == 1
    writes = len(kube.written())
    now[0] += 60
    assert not keeper.sync("u1", State(delivered=1, last_delivered_at=now[0] - 60))  # unchanged
    now[0] += 1
    busy = State(delivered=5, last_delivered_at=now[0])
    assert keeper.sync("u1", busy)
    now[0] += 1
    assert not keeper.sync("u1", State(delivered=9, last_delivered_at=now[0]))  # too soon
    assert len(kube.written()) == writes + 1
    now[0] += 5
    assert keeper.sync("u1", State(delivered=9, last_delivered_at=now[0]))
    assert kube.stored(API_VERSION, "EventSink", "ops", NS)["status"]["delivered"] == 9


def test_a_field_that_no_longer_applies_is_removed() -> None:
    kube = _kube()
    kube.put(SINK)
    now = [1_796_018_400.0]
    keeper = StatusKeeper(kube, lambda: now[0], min_interval=0.0)
    keeper.seen("u1", NS, "ops", 1, {})
    keeper.resolved("u1", resolve(kube, NS, "ops", {"uri": "http://x/e"}, "cluster.local"))
    assert keeper.sync("u1", State(pending=1, throttled_until=now[0] + 30))
    assert "throttledUntil" in kube.stored(API_VERSION, "EventSink", "ops", NS)["status"]
    now[0] += 31
    assert keeper.sync("u1", State(pending=0, delivered=1, last_delivered_at=now[0]))
    assert "throttledUntil" not in kube.stored(API_VERSION, "EventSink", "ops", NS)["status"]
