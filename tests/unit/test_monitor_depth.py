"""Depth figures computed from offsets."""

from datetime import UTC, datetime, timedelta

import pytest

from dlq_operator.monitor.depth import (
    DlqObservation,
    InflowSample,
    PartitionOffsets,
    compute_figures,
    first_unresolved_offsets,
    oldest_of,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def observe(**overrides: object) -> DlqObservation:
    values: dict[str, object] = {
        "namespace": "shop",
        "name": "orders",
        "dlq_topic": "orders.dlq",
        "parked_topic": "orders.dlq.parked",
        "dlq": {0: PartitionOffsets(10, 30), 1: PartitionOffsets(0, 5)},
        "retry_enabled": True,
    }
    values.update(overrides)
    return DlqObservation(**values)  # type: ignore[arg-type]


def figures_of(observation: DlqObservation, previous: InflowSample | None = None):
    return compute_figures(observation, now=NOW, previous=previous)[0]


def test_messages_is_the_retained_range_of_the_dlq_topic() -> None:
    assert figures_of(observe()).messages == 20 + 5


def test_pending_counts_from_the_retry_groups_committed_offsets() -> None:
    figures = figures_of(observe(retry_committed={0: 25}))
    # partition 0: 30 - 25; partition 1 has nothing committed: 5 - 0
    assert figures.pending == 5 + 5
    assert figures.unresolved == 10


def test_a_committed_offset_below_low_counts_from_low() -> None:
    # Retention deleted records the worker never reached: they are gone, not pending.
    assert figures_of(observe(retry_committed={0: 2, 1: 0})).pending == 20 + 5


def test_a_committed_offset_beyond_high_does_not_subtract() -> None:
    assert figures_of(observe(retry_committed={0: 99, 1: 0})).pending == 5


def test_parked_counts_above_the_resolved_watermark() -> None:
    figures = figures_of(
        observe(
            retry_committed={0: 30, 1: 5},
            parked={0: PartitionOffsets(0, 8), 1: PartitionOffsets(4, 6)},
            resolved_parked={0: 3},
        )
    )
    assert figures.pending == 0
    assert figures.parked == 5 + 2
    assert figures.unresolved == 7


def test_without_retries_the_dlq_topic_itself_is_unresolved_above_the_watermark() -> None:
    figures = figures_of(
        observe(retry_enabled=False, resolved_dlq={0: 28}, retry_committed={0: 30})
    )
    assert figures.pending == 0
    assert figures.unresolved == 2 + 5
    assert figures.messages == 25


def test_without_retries_leftover_parked_records_stay_unresolved() -> None:
    figures = figures_of(
        observe(retry_enabled=False, resolved_dlq={0: 30, 1: 5}, parked={0: PartitionOffsets(0, 3)})
    )
    assert figures.unresolved == 3


def test_a_purge_moving_low_lowers_every_figure() -> None:
    purged = observe(dlq={0: PartitionOffsets(30, 30), 1: PartitionOffsets(5, 5)})
    figures = figures_of(purged)
    assert (figures.messages, figures.pending, figures.unresolved) == (0, 0, 0)


def test_absent_parked_topic_and_group_mean_zero_parked_and_committed_low() -> None:
    figures = figures_of(observe(parked={}, retry_committed={}))
    assert figures.parked == 0
    assert figures.pending == figures.messages == 25


def test_inflow_is_unknown_on_the_first_cycle() -> None:
    figures, sample = compute_figures(observe(), now=NOW, previous=None)
    assert figures.inflow_per_minute is None
    assert sample == InflowSample(high_sum=35, at=NOW)


def test_inflow_is_the_growth_of_the_high_watermarks_per_minute() -> None:
    previous = InflowSample(high_sum=5, at=NOW - timedelta(minutes=2))
    assert figures_of(observe(), previous).inflow_per_minute == pytest.approx(15.0)


def test_inflow_is_never_negative() -> None:
    previous = InflowSample(high_sum=1000, at=NOW - timedelta(minutes=1))
    assert figures_of(observe(), previous).inflow_per_minute == 0.0


def test_inflow_is_unknown_when_no_time_passed() -> None:
    assert figures_of(observe(), InflowSample(high_sum=0, at=NOW)).inflow_per_minute is None


def test_age_of_the_oldest_unresolved_record() -> None:
    oldest = NOW - timedelta(minutes=5)
    figures = figures_of(observe(oldest_unresolved_timestamp=oldest))
    assert figures.oldest_unresolved_at == oldest
    assert figures.oldest_unresolved_age_seconds == 300.0


def test_no_age_without_a_timestamp_or_when_nothing_is_unresolved() -> None:
    assert figures_of(observe()).oldest_unresolved_age_seconds is None
    resolved = observe(retry_committed={0: 30, 1: 5}, oldest_unresolved_timestamp=NOW)
    assert figures_of(resolved).oldest_unresolved_at is None
    assert figures_of(resolved).oldest_unresolved_age_seconds is None


def test_a_timestamp_from_a_clock_ahead_gives_age_zero() -> None:
    ahead = observe(oldest_unresolved_timestamp=NOW + timedelta(seconds=3))
    assert figures_of(ahead).oldest_unresolved_age_seconds == 0.0


def test_first_unresolved_offsets_follow_the_figures_positions() -> None:
    observation = observe(
        retry_committed={0: 12, 1: 5},
        parked={0: PartitionOffsets(4, 9), 1: PartitionOffsets(0, 2)},
        resolved_parked={1: 2},
    )
    assert first_unresolved_offsets(observation) == {
        ("orders.dlq", 0): 12,
        ("orders.dlq.parked", 0): 4,
    }


def test_first_unresolved_offsets_without_retries_use_the_resolved_watermark() -> None:
    observation = observe(retry_enabled=False, resolved_dlq={0: 15}, retry_committed={0: 30})
    assert first_unresolved_offsets(observation) == {("orders.dlq", 0): 15, ("orders.dlq", 1): 0}


def test_the_oldest_unresolved_record_is_the_earliest_known_timestamp() -> None:
    first = {("orders.dlq", 0): 15, ("orders.dlq", 1): 0, ("orders.dlq.parked", 0): 3}
    timestamps = {
        ("orders.dlq", 0, 15): 1_767_225_660_000,  # 2026-01-01T00:01:00Z
        ("orders.dlq", 1, 0): 1_767_225_600_000,  # 2026-01-01T00:00:00Z
        ("orders.dlq", 1, 7): 1_767_225_000_000,  # another position: not the first one
    }
    assert oldest_of(first, timestamps) == datetime(2026, 1, 1, tzinfo=UTC)
    assert oldest_of(first, {}) is None
