"""The sinks' outbound policy: the artifact reader's guard with sink defaults."""

from __future__ import annotations

import asyncio

import pytest

from mlkube.outbox.decide import decide
from mlkube.outbox.model import SinkConfig, Target
from mlkube.outbox.schema import PRIMARY
from mlkube.outbox.transport import (
    Answer,
    new_session,
    post,
    sink_policy,
)
from mlkube.storage.policy import FetchPolicy


def _post(policy: FetchPolicy, url: str) -> Answer:
    async def go() -> Answer:
        async with new_session(policy) as session:
            return await post(session, url, {}, b"{}", timeout=2.0)

    return asyncio.run(go())


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",  # link-local: cloud metadata
        "http://metadata.google.internal/x",
        "http://[fd00:ec2::254]/x",
        "http://127.0.0.1:9/events",  # the operator itself, outside dev mode
        "http://localhost:9/events",
        "http://receiver/events",  # single label: the operator's own search domains
    ],
)
def test_refused_outside_dev_mode_and_never_retried(url: str) -> None:
    answer = _post(sink_policy(allow_loopback=False), url)
    assert answer.refused and answer.status is None, answer
    decision = decide(SinkConfig("ns/s", Target(url)), PRIMARY, 0, answer, 0.0)
    assert decision.failed_reason == "refused"


def test_denied_networks_are_refused_even_in_dev_mode() -> None:
    policy = sink_policy(allow_loopback=True, denied_networks=("127.0.0.0/8",))
    assert _post(policy, "http://127.0.0.1:9/events").refused


def test_loopback_in_dev_mode_is_a_connection_error_to_retry() -> None:
    answer = _post(sink_policy(allow_loopback=True), "http://127.0.0.1:9/events")
    assert not answer.refused and answer.status is None  # nothing listens on port 9
    assert sink_policy(allow_loopback=False).host_problem("receiver.team-a.svc") is None
