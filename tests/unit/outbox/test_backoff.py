"""Backoff math (Knative's shape), Retry-After parsing and what each answer decides."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from mlkube.outbox.backoff import (
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    Verdict,
    classify,
    parse_retry_after,
    retry_delay,
)
from mlkube.outbox.decide import Action, decide
from mlkube.outbox.model import SinkConfig, Target
from mlkube.outbox.schema import DEAD_LETTER, PRIMARY
from mlkube.outbox.transport import Answer

NOW = 1_800_000_000.0


def test_exponential_doubles_from_the_first_retry() -> None:
    assert [retry_delay("exponential", 0.5, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


def test_linear_grows_by_the_delay() -> None:
    assert [retry_delay("linear", 0.5, n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]


def test_delays_are_capped_and_never_overflow() -> None:
    assert retry_delay("exponential", 1.0, 40) == MAX_BACKOFF
    assert retry_delay("exponential", 1.0, 10_000) == MAX_BACKOFF
    assert retry_delay("linear", 10.0, 10_000) == MAX_BACKOFF
    assert retry_delay("exponential", 0.0, 10_000) == 0.0


def test_retry_after_delta_seconds() -> None:
    assert parse_retry_after("2", NOW) == 2.0
    assert parse_retry_after(" 120 ", NOW) == 120.0
    assert parse_retry_after("999999", NOW) == MAX_RETRY_AFTER


def test_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 30, UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == pytest.approx(30.0)
    past = datetime.fromtimestamp(NOW - 30, UTC)
    assert parse_retry_after(format_datetime(past, usegmt=True), NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026"])
def test_retry_after_unreadable(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize(
    ("status", "retry_after", "verdict"),
    [
        (200, False, Verdict.DELIVERED),
        (202, False, Verdict.DELIVERED),
        (429, False, Verdict.THROTTLED),
        (503, True, Verdict.THROTTLED),
        (503, False, Verdict.RETRY),
        (500, False, Verdict.RETRY),
        (408, False, Verdict.RETRY),
        (409, False, Verdict.RETRY),
        (410, False, Verdict.GONE),
        (400, False, Verdict.REJECTED),
        (404, False, Verdict.REJECTED),
        (302, False, Verdict.REJECTED),
    ],
)
def test_classify(status: int, retry_after: bool, verdict: Verdict) -> None:
    assert classify(status, retry_after) is verdict


SINK = SinkConfig(key="ns/s", target=Target("http://x"), retry=2, backoff_delay=1.0)
WITH_DLS = SinkConfig(
    key="ns/s",
    target=Target("http://x"),
    retry=2,
    backoff_delay=1.0,
    dead_letter=Target("http://d"),
)


def test_retryable_failures_retry_until_spent_then_dead_letter_or_drop() -> None:
    first = decide(SINK, PRIMARY, 0, Answer(500), NOW)
    assert (first.action, first.attempts, first.next_at) == (Action.RETRY, 1, NOW + 2.0)
    assert decide(SINK, PRIMARY, 1, Answer(None, message="timeout"), NOW).action is Action.RETRY
    spent = decide(SINK, PRIMARY, 2, Answer(503), NOW)
    assert (spent.action, spent.failed_reason) == (Action.DONE, "retries_exhausted")
    to_dls = decide(WITH_DLS, PRIMARY, 2, Answer(503), NOW)
    assert (to_dls.action, to_dls.attempts, to_dls.next_at) == (Action.DEAD_LETTER, 0, NOW)


def test_rejections_are_not_retried() -> None:
    rejected = decide(WITH_DLS, PRIMARY, 0, Answer(400), NOW)
    assert (rejected.action, rejected.failed_reason) == (Action.DEAD_LETTER, "rejected")
    refused = decide(SINK, PRIMARY, 0, Answer(None, refused=True), NOW)
    assert (refused.action, refused.failed_reason) == (Action.DONE, "refused")


def test_throttle_pauses_the_sink_for_retry_after() -> None:
    d = decide(SINK, PRIMARY, 0, Answer(429, retry_after="7"), NOW)
    assert (d.action, d.pause_until, d.next_at) == (Action.RETRY, NOW + 7, NOW + 7)
    no_header = decide(SINK, PRIMARY, 0, Answer(429), NOW)
    assert no_header.pause_until == NOW + 2.0  # the backoff stands in


def test_gone_keeps_the_row_and_dead_letter_gone_drops_it() -> None:
    assert decide(SINK, PRIMARY, 0, Answer(410), NOW).action is Action.KEEP
    dls = decide(WITH_DLS, DEAD_LETTER, 0, Answer(410), NOW)
    assert (dls.action, dls.failed_reason) == (Action.DONE, "dead_letter_failed")


def test_delivered() -> None:
    d = decide(SINK, PRIMARY, 5, Answer(204), NOW)
    assert (d.action, d.failed_reason) == (Action.DONE, None)
