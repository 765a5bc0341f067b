"""EventSinks, pure (builders/event_sink.py): who wants which event, a Service reference to its
cluster URL, and the status from the delivery state — Ready, SinkGone, failing, throttled,
unusable — with kstatus's conditions and no change when nothing changed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mlkube.builders.event_sink import (
    MSG_GONE,
    Problem,
    SinkFilter,
    build_sink_status,
    destination_url,
    fingerprint,
    sink_filter,
)
from mlkube.outbox.model import Failure
from mlkube.outbox.model import SinkState as State

NOW = "2026-11-30T06:10:00Z"
T0 = 1_796_018_400.0  # 2026-11-30T06:00:00Z


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_namespaced_sink_gets_its_namespace_only_whatever_namespaces_says() -> None:
    spec = {"uri": "http://x/", "namespaces": ["b"], "types": ["dev.mlkube.model.*"]}
    sink = sink_filter("a", "ops", spec, operator_namespace="mlkube-system")
    assert sink == SinkFilter("a/ops", "a", (), ("dev.mlkube.model.*",))
    assert sink.wants("a", "dev.mlkube.model.registered.v1")
    assert not sink.wants("b", "dev.mlkube.model.registered.v1")
    assert not sink.wants("a", "dev.mlkube.drift.detected.v1")


def test_a_sink_in_the_operator_namespace_gets_the_namespaces_it_lists() -> None:
    sink = sink_filter("mlkube-system", "all", {"uri": "http://x/"}, "mlkube-system")
    assert sink.wants("a", "dev.mlkube.rollout.aborted.v1") and sink.wants("b", "x")
    listed = sink_filter("mlkube-system", "ab", {"namespaces": ["a", "b"]}, "mlkube-system")
    assert listed.wants("b", "x") and not listed.wants("c", "x")


@pytest.mark.parametrize(
    ("types", "wanted"),
    [
        (["*"], True),
        (["dev.mlkube.rollout.aborted.v1"], True),
        (["dev.mlkube.rollout.*"], True),
        (["dev.mlkube.rollout.aborted.v2"], False),
        (["dev.mlkube.model.*", "dev.mlkube.drift.*"], False),
    ],
)
def test_type_filters(types: list[str], wanted: bool) -> None:
    sink = SinkFilter("k", None, (), tuple(types))
    assert sink.wants("a", "dev.mlkube.rollout.aborted.v1") is wanted


def _service(*ports: tuple[str, int]) -> dict[str, Any]:
    return {"spec": {"ports": [{"name": n, "port": p} for n, p in ports]}}


def test_service_references_resolve_to_cluster_dns() -> None:
    ref = {"ref": {"kind": "Service", "name": "rx", "path": "/events"}}
    assert destination_url(ref, "a", _service(("web", 8080)), "cluster.local") == (
        "http://rx.a.svc.cluster.local:8080/events"
    )
    two = _service(("metrics", 9090), ("http", 80))
    other = {"ref": {"name": "rx", "namespace": "b"}}
    assert destination_url(other, "a", two, "c.example") == "http://rx.b.svc.c.example:80/"
    assert destination_url({"uri": "http://127.0.0.1:1/e"}, "a", None, "x") == (
        "http://127.0.0.1:1/e"
    )


@pytest.mark.parametrize(
    ("ref", "service", "reason"),
    [
        ({"name": "rx"}, None, "ServiceNotFound"),
        ({"name": "rx", "port": 81}, _service(("http", 80)), "PortNotFound"),
        ({"name": "rx"}, _service(("a", 1), ("b", 2)), "PortNotFound"),
    ],
)
def test_unusable_references(ref: dict[str, Any], service: Any, reason: str) -> None:
    got = destination_url({"ref": ref}, "a", service, "cluster.local")
    assert isinstance(got, Problem) and got.reason == reason


def test_fingerprint_moves_with_the_spec_and_what_it_resolves_to() -> None:
    spec = {"uri": "http://x/"}
    assert fingerprint(spec) == fingerprint(dict(spec))
    assert fingerprint(spec) != fingerprint({"uri": "http://y/"})
    assert fingerprint(spec, "k1") != fingerprint(spec, "k2")


def _status(
    state: State | None,
    previous: dict[str, Any] | None = None,
    problem: Problem | None = None,
    now: str = NOW,
) -> dict[str, Any]:
    return build_sink_status(generation=2, urls=["http://x/e", None], problem=problem,
                             state=state, previous=previous, now=now)  # fmt: skip


def test_delivering_is_ready_and_an_unchanged_state_gives_the_same_status() -> None:
    state = State(delivered=3, last_delivered_at=T0)
    status = _status(state)
    assert _conditions(status) == {
        "Ready": ("True", "Delivering"),
        "Reconciling": ("False", "AsExpected"),
        "Stalled": ("False", "AsExpected"),
    }
    assert status["delivered"] == 3 and status["lastDeliveredAt"] == "2026-11-30T06:00:00Z"
    assert status["observedGeneration"] == 2 and status["sinkUri"] == "http://x/e"
    # Later, nothing changed: the same document (the handler writes nothing).
    assert _status(state, status, now="2026-11-30T07:00:00Z") == status


def test_a_410_is_sink_gone_and_stalled() -> None:
    fail = Failure(T0 + 5, 410, "Gone")
    status = _status(State(delivered=3, pending=2, last_failure=fail, gone=True))
    assert _conditions(status)["Ready"] == ("False", "SinkGone")
    assert _conditions(status)["Stalled"] == ("True", "SinkGone")
    assert status["message"] == MSG_GONE
    assert status["lastFailure"] == {"time": "2026-11-30T06:00:05Z", "status": 410,
                                     "message": "Gone"}  # fmt: skip


def test_failing_sends_are_reconciling_until_one_gets_through() -> None:
    down = State(pending=2, last_failure=Failure(T0, None, "connection refused"))
    status = _status(down)
    assert _conditions(status)["Ready"] == ("False", "DeliveryFailing")
    assert _conditions(status)["Reconciling"][0] == "True"
    assert "no answer: connection refused" in status["message"]
    assert "status" not in status["lastFailure"]
    recovered = replace(down, delivered=2, pending=0, last_delivered_at=T0 + 1)
    assert _conditions(_status(recovered, status))["Ready"] == ("True", "Delivering")


def test_throttled_is_ready_and_says_until_when() -> None:
    status = _status(State(pending=1, throttled_until=T0 + 30))
    assert _conditions(status)["Ready"] == ("True", "Throttled")
    assert status["throttledUntil"] == "2026-11-30T06:00:30Z"


def test_an_unusable_sink_is_stalled_with_the_reason() -> None:
    problem = Problem("SecretNotFound", "Secret a/key has no key 'key'")
    status = _status(None, problem=problem)
    assert _conditions(status)["Ready"] == ("False", "SecretNotFound")
    assert _conditions(status)["Stalled"] == ("True", "SecretNotFound")
    assert status["message"] == problem.message
