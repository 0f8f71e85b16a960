"""Durations: Go duration strings limited to ms, s, m and h, as CEL's duration() reads them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from dlq_operator.api import Duration, parse_duration
from dlq_operator.api.common import DURATION_PATTERN

DURATION = TypeAdapter(Duration)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("500ms", timedelta(milliseconds=500)),
        ("1s", timedelta(seconds=1)),
        ("1.5s", timedelta(seconds=1.5)),
        ("60s", timedelta(minutes=1)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2h45m30s250ms", timedelta(hours=2, minutes=45, seconds=30, milliseconds=250)),
        ("0.5h", timedelta(minutes=30)),
        ("1s1h", timedelta(hours=1, seconds=1)),
        ("2562047h", timedelta(hours=2562047)),
    ],
)
def test_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert DURATION.validate_python(text) == text
    assert re.fullmatch(DURATION_PATTERN, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "10",
        "1d",
        "1w",
        "1us",
        "1ns",
        "-1s",
        "+1s",
        "1 s",
        "1S",
        "1.s",
        ".5s",
        "1h 30m",
        "1s\n",
        "PT1S",
        "2562048h",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
    with pytest.raises(ValidationError):
        DURATION.validate_python(text)


def test_only_out_of_range_passes_the_pattern_but_not_the_parser() -> None:
    """Go durations are int64 nanoseconds, which CEL's duration() refuses to exceed too."""
    assert re.fullmatch(DURATION_PATTERN, "2562048h")
    with pytest.raises(ValueError, match="292 years"):
        parse_duration("2562048h")
