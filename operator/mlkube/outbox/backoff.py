"""Pure delivery decisions: retry delays (Knative's shape), Retry-After, what a status means.

Knative: `exponential` waits backoffDelay * 2^n before retry n, `linear` backoffDelay * n
(n = 1 for the first retry). Each delay is capped so a large `retry` cannot overflow into
years. Retry-After is delta-seconds or an HTTP date (RFC 9110 §10.2.3); its pause is capped
too, so a hostile or broken sink cannot park its own deliveries for good.
"""

from __future__ import annotations

import enum
import math
from email.utils import parsedate_to_datetime
from typing import Final

from mlkube.outbox.model import BackoffPolicy

MAX_BACKOFF: Final = 3600.0
MAX_RETRY_AFTER: Final = 3600.0


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # 5xx, 408, 409, timeouts, connection errors
    THROTTLED = "throttled"  # 429 (or 503 with Retry-After): pause the whole sink, then retry
    GONE = "gone"  # 410: stop sending to the sink until its spec changes
    REJECTED = "rejected"  # other 3xx/4xx, refused addresses: never retried


def retry_delay(policy: BackoffPolicy, delay: float, retry: int) -> float:
    """Seconds to wait before retry number `retry` (1 = the first retry)."""
    n = max(retry, 1)
    if policy == "linear":
        return min(delay * n, MAX_BACKOFF)
    if n >= 64:  # 2^n would dwarf the cap anyway
        return MAX_BACKOFF if delay > 0 else 0.0
    return min(delay * math.ldexp(1.0, n), MAX_BACKOFF)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to pause from a Retry-After header (delta-seconds or HTTP date), capped at
    MAX_RETRY_AFTER; None when absent or unreadable (a date in the past pauses 0 s)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return min(float(int(text)), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a missing zone means UTC
        return None
    return min(max(when.timestamp() - now, 0.0), MAX_RETRY_AFTER)


def classify(status: int, has_retry_after: bool = False) -> Verdict:
    """What an HTTP status means for the delivery (docs/notifications.md §4)."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 429 or (status == 503 and has_retry_after):
        return Verdict.THROTTLED
    if status == 410:
        return Verdict.GONE
    if status in (408, 409) or status >= 500:
        return Verdict.RETRY
    return Verdict.REJECTED  # 1xx/3xx (redirects are not followed) and other 4xx
