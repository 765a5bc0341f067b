"""Go-style durations (`90s`, `10m`, `1h30m`, `30d`) shared by every kind that takes one, and
ISO-8601 ones (`PT0.5S`) where an API copies Knative's shape (EventSink delivery).

One pattern for the CRD, pydantic and the controllers, and one parser, so a duration the API
server admits is always one the operator can read (pipelines: retry backoff, cache maxAge,
timeouts, trigger cooldowns and poll intervals).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, Field

from mlkube.api.markers import Rule

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


# ISO-8601 durations (`PT0.5S`, `PT10S`, `P1DT2H`): Knative's delivery spec uses them, so the
# EventSink takes them in the same shape. Days, hours, minutes and (fractional) seconds only:
# months and years have no fixed length. The API server's regexes (RE2) have no lookahead, so
# the empty forms (`P`, `PT`, `P1DT`) are refused by CEL beside the pattern.
ISO_DURATION_PATTERN = r"^P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+(\.[0-9]{1,9})?S)?)?$"
MSG_ISO_DURATION = (
    "an ISO-8601 duration with days, hours, minutes or seconds, e.g. PT0.5S, PT10S, PT1M, P1D"
)
_ISO = re.compile(
    r"^P(?:(?P<d>[0-9]+)D)?(?:T(?:(?P<h>[0-9]+)H)?(?:(?P<m>[0-9]+)M)?"
    r"(?:(?P<s>[0-9]+(?:\.[0-9]{1,9})?)S)?)?$"
)


def parse_iso_duration(text: str) -> timedelta:
    """`PT0.5S` → timedelta(seconds=0.5); ValueError for malformed, empty or zero ones."""
    match = _ISO.match(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"{text!r}: {MSG_ISO_DURATION}")
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    longest = MAX_DURATION.total_seconds()
    if len(text) > MAX_DURATION_LENGTH or any(v > longest for v in parts.values()):
        raise ValueError(f"{text!r}: at most {MAX_DURATION.days}d")
    total = timedelta(
        days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )  # fmt: skip
    if total > MAX_DURATION:
        raise ValueError(f"{text!r}: at most {MAX_DURATION.days}d")
    if total <= timedelta(0):
        raise ValueError(f"{text!r}: must be longer than zero")
    return total


def _check_iso(text: str) -> str:
    parse_iso_duration(text)
    return text


IsoDuration = Annotated[
    str,
    Field(min_length=3, max_length=MAX_DURATION_LENGTH, pattern=ISO_DURATION_PATTERN),
    Rule(
        "!self.endsWith('T') && self.matches('[1-9]')",
        message="an ISO-8601 duration longer than zero, e.g. PT0.5S, PT10S, PT1M",
    ),
    AfterValidator(_check_iso),
]
"""An ISO-8601 duration kept as written (`PT0.5S`, `PT10S`, `P1D`): Knative's delivery shape."""
