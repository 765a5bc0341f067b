"""Go-style durations (`90s`, `10m`, `1h30m`, `30d`) shared by every kind that takes one.

One pattern for the CRD, pydantic and the controllers, and one parser, so a duration the API
server admits is always one the operator can read (pipelines: retry backoff, cache maxAge,
timeouts, trigger cooldowns and poll intervals).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field

DURATION_PATTERN = r"^([0-9]+(ms|s|m|h|d))+$"
MAX_DURATION_LENGTH = 32
# Longer than any cache age or deadline anyone means; keeps timedelta arithmetic far from overflow.
MAX_DURATION = timedelta(days=3650)
MSG_DURATION = (
    "a duration is one or more <number><unit> with unit ms, s, m, h or d, e.g. 90s, 1h30m, 30d"
)

_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


def parse_duration(text: str) -> timedelta:
    """`1h30m` → timedelta(hours=1, minutes=30); ValueError naming the text when malformed."""
    if not re.fullmatch(DURATION_PATTERN, text) or len(text) > MAX_DURATION_LENGTH:
        raise ValueError(f"{text!r}: {MSG_DURATION}")
    total = sum((int(n) * _UNITS[unit] for n, unit in _PART.findall(text)), timedelta())
    if total > MAX_DURATION:
        raise ValueError(f"{text!r}: at most {MAX_DURATION.days}d")
    return total


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    Field(min_length=2, max_length=MAX_DURATION_LENGTH, pattern=DURATION_PATTERN),
    AfterValidator(_check),
]
"""A Go-style duration kept as written: `90s`, `10m`, `1h30m`, `30d` (units ms, s, m, h, d)."""
