"""What one attempt's answer does to its delivery row and to the sink (pure).

Primary target: 2xx delivered; 429 (or 503 + Retry-After) pauses the whole sink for
Retry-After (else the backoff) and retries; 410 marks the sink gone and leaves the row pending
untouched (delivered if the sink's spec changes); 5xx/408/409/timeouts/connection errors retry
with the backoff until `retry` retries are spent; anything else is rejected at once. A row that
gives up moves to the dead letter sink when there is one (attempts reset), else is dropped;
either way the sink's `failed` counts it once. On the dead letter target every failure that
would give up (410 included) drops the row.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mlkube.outbox.backoff import Verdict, classify, parse_retry_after, retry_delay
from mlkube.outbox.model import SinkConfig
from mlkube.outbox.schema import PRIMARY
from mlkube.outbox.transport import Answer


class Action(enum.Enum):
    DONE = "done"  # delete the row: delivered, or given up without a dead letter sink
    RETRY = "retry"  # attempts + 1, next_at
    DEAD_LETTER = "dead_letter"  # move to the dead letter sink
    KEEP = "keep"  # leave the row as it is (the sink is gone or was throttled meanwhile)


@dataclass(frozen=True)
class Decision:
    action: Action
    verdict: Verdict
    attempts: int = 0
    next_at: float = 0.0
    pause_until: float | None = None  # the whole sink waits until then (429)
    failed_reason: str | None = None  # counted as failed, with this reason


def verdict_of(answer: Answer) -> Verdict:
    if answer.status is None:
        return Verdict.REJECTED if answer.refused else Verdict.RETRY
    return classify(answer.status, answer.retry_after is not None)


def decide(sink: SinkConfig, target: int, attempts: int, answer: Answer, now: float) -> Decision:
    """The row had `attempts` failed attempts before this one."""
    verdict = verdict_of(answer)
    if verdict is Verdict.DELIVERED:
        return Decision(Action.DONE, verdict)
    if verdict is Verdict.GONE and target == PRIMARY:
        return Decision(Action.KEEP, verdict)
    pause_until = None
    if verdict is Verdict.THROTTLED:
        pause = parse_retry_after(answer.retry_after, now)
        if pause is None:
            pause = retry_delay(sink.backoff_policy, sink.backoff_delay, attempts + 1)
        pause_until = now + pause
    if verdict in (Verdict.RETRY, Verdict.THROTTLED) and attempts < sink.retry:
        delay = retry_delay(sink.backoff_policy, sink.backoff_delay, attempts + 1)
        next_at = max(now + delay, pause_until or 0.0)
        return Decision(Action.RETRY, verdict, attempts + 1, next_at, pause_until)
    if target != PRIMARY:
        return Decision(
            Action.DONE, verdict, pause_until=pause_until, failed_reason="dead_letter_failed"
        )
    if answer.refused:
        reason = "refused"
    elif verdict in (Verdict.RETRY, Verdict.THROTTLED):
        reason = "retries_exhausted"
    else:
        reason = "rejected"
    action = Action.DEAD_LETTER if sink.dead_letter is not None else Action.DONE
    return Decision(action, verdict, 0, now, pause_until, reason)
