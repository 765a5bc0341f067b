"""Go-style durations: the one parser every pipeline controller uses, and its CRD pattern."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from mlkube.api.duration import DURATION_PATTERN, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("30d", timedelta(days=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("0s", timedelta()),
    ],
)
def test_parses_go_style_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert re.fullmatch(DURATION_PATTERN, text)


@pytest.mark.parametrize("text", ["", "10", "1.5h", "-1m", "1w", "1h 30m", "m", "1H", "s10"])
def test_rejects_what_the_crd_pattern_rejects(text: str) -> None:
    assert not re.fullmatch(DURATION_PATTERN, text)
    with pytest.raises(ValueError, match="duration is one or more"):
        parse_duration(text)


def test_refuses_absurd_lengths_with_a_message() -> None:
    with pytest.raises(ValueError, match="at most 3650d"):
        parse_duration("99999d")
