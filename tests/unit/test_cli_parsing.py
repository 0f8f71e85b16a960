"""The CLI's own argument forms and the checks made on them before anything is read."""

from datetime import UTC, datetime, timedelta

import pytest

from dlq_operator.api import ReprocessSource
from dlq_operator.cli.parsing import (
    HeaderMatch,
    Position,
    is_dead_letter_topic,
    parse_header,
    parse_moment,
    parse_position,
    replay_source_topic,
)
from dlq_operator.cli.topics import locate, require_dead_letter_topic, require_partitions
from dlq_operator.errors import ConfigurationError, NotADeadLetterTopic, OffsetOutOfRange

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0:17", Position(0, 17)),
        ("12:0", Position(12, 0)),
        (" 3:4 ", Position(3, 4)),
        ("17", Position(None, 17)),
        ("0", Position(None, 0)),
    ],
)
def test_positions(text: str, expected: Position) -> None:
    assert parse_position(text) == expected


@pytest.mark.parametrize("text", ["", ":5", "a:5", "1:b", "1:2:3", "-1:4", "2:-4", "-3", "x"])
def test_positions_refused(text: str) -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_position(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-28T10:30:00Z", datetime(2026, 2, 28, 10, 30, tzinfo=UTC)),
        ("2026-02-28T10:30:00+02:00", datetime(2026, 2, 28, 8, 30, tzinfo=UTC)),
        # No zone means UTC, as the envelope's timestamps are read.
        ("2026-02-28T10:30:00", datetime(2026, 2, 28, 10, 30, tzinfo=UTC)),
        ("2026-02-28", datetime(2026, 2, 28, tzinfo=UTC)),
        ("2h", NOW - timedelta(hours=2)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("45s", NOW - timedelta(seconds=45)),
        ("500ms", NOW - timedelta(milliseconds=500)),
        ("3d", NOW - timedelta(days=3)),
    ],
)
def test_moments(text: str, expected: datetime) -> None:
    assert parse_moment(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2 hours", "3w", "-2h", "", "2026-13-01"])
def test_moments_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_moment(text, NOW)


def test_headers() -> None:
    assert parse_header("tenant=t1") == HeaderMatch("tenant", "t1")
    assert parse_header("empty=") == HeaderMatch("empty", "")
    assert parse_header("expr=a=b") == HeaderMatch("expr", "a=b")
    for text in ("tenant", "=v", ""):
        with pytest.raises(ValueError, match="name=value"):
            parse_header(text)


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("orders.dlq", True),
        ("orders.dlq.parked", True),
        ("custom.parked", True),
        ("orders", False),
        ("orders.dlq.retry", False),
        ("dlq", False),
    ],
)
def test_dead_letter_topic_names(topic: str, expected: bool) -> None:
    assert is_dead_letter_topic(topic) is expected


def test_not_a_dead_letter_topic_unless_forced() -> None:
    with pytest.raises(NotADeadLetterTopic, match="orders is not a dead-letter topic"):
        require_dead_letter_topic("orders")
    require_dead_letter_topic("orders", force=True)
    require_dead_letter_topic("orders.dlq")


@pytest.mark.parametrize(
    ("topic", "source", "expected"),
    [
        ("orders.dlq", None, "orders.dlq"),
        ("orders.dlq", ReprocessSource.DLQ, "orders.dlq"),
        ("orders.dlq", ReprocessSource.PARKED, "orders.dlq.parked"),
        ("orders.dlq.parked", None, "orders.dlq.parked"),
        ("orders.dlq.parked", ReprocessSource.PARKED, "orders.dlq.parked"),
    ],
)
def test_replay_source_topic(topic: str, source: ReprocessSource | None, expected: str) -> None:
    assert replay_source_topic(topic, source) == expected


def test_replay_source_dlq_of_a_parked_topic_is_a_contradiction() -> None:
    with pytest.raises(ValueError, match="is a parked topic"):
        replay_source_topic("orders.dlq.parked", ReprocessSource.DLQ)


RANGES = {0: (0, 5), 1: (3, 10), 2: (8, 8)}


def test_locate_partition_and_offset() -> None:
    assert locate("t.dlq", RANGES, Position(1, 3)) == (1, 3)
    assert locate("t.dlq", RANGES, Position(1, 9)) == (1, 9)
    with pytest.raises(OffsetOutOfRange, match=r"offset 10 is not in partition 1 .*3\.\.9"):
        locate("t.dlq", RANGES, Position(1, 10))
    with pytest.raises(OffsetOutOfRange, match=r"offset 2 is not in partition 1"):
        locate("t.dlq", RANGES, Position(1, 2))
    with pytest.raises(OffsetOutOfRange, match="it is empty"):
        locate("t.dlq", RANGES, Position(2, 8))
    with pytest.raises(OffsetOutOfRange, match="has no partition 3"):
        locate("t.dlq", RANGES, Position(3, 0))


def test_locate_a_bare_offset_only_when_one_partition_holds_it() -> None:
    assert locate("t.dlq", RANGES, Position(None, 1)) == (0, 1)
    assert locate("t.dlq", RANGES, Position(None, 7)) == (1, 7)
    with pytest.raises(ConfigurationError, match=r"in 2 partitions .* e\.g\. 0:4, 1:4"):
        locate("t.dlq", RANGES, Position(None, 4))
    with pytest.raises(OffsetOutOfRange, match=r"no partition of t\.dlq holds offset 10"):
        locate("t.dlq", RANGES, Position(None, 10))


def test_partitions_must_exist() -> None:
    require_partitions("t.dlq", RANGES, [0, 2])
    with pytest.raises(OffsetOutOfRange, match=r"has no partition 4, 7 \(it has 3: 0\.\.2\)"):
        require_partitions("t.dlq", RANGES, [7, 0, 4])
