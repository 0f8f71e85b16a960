"""The retry worker's schedule: waiting retries, pause/resume shares, commit watermark."""

import pytest

from dlq_operator.worker.schedule import Due, Schedule


def assigned(capacity: int, partitions: range = range(4)) -> Schedule:
    schedule = Schedule(capacity)
    schedule.assign(partitions)
    return schedule


def scheduled(schedule: Schedule, partition: int, offset: int, due_at: float) -> None:
    assert schedule.track(partition, offset)
    assert schedule.add(partition, offset, due_at, f"p{partition}o{offset}".encode())


# --- waiting retries ----------------------------------------------------------------


def test_due_retries_come_out_earliest_first_across_partitions() -> None:
    schedule = assigned(100)
    scheduled(schedule, 0, 10, due_at=30.0)
    scheduled(schedule, 1, 5, due_at=10.0)
    scheduled(schedule, 0, 11, due_at=20.0)
    scheduled(schedule, 2, 1, due_at=99.0)

    due = schedule.pop_due(now=50.0, limit=10)

    assert due == [Due(1, 5, b"p1o5"), Due(0, 11, b"p0o11"), Due(0, 10, b"p0o10")]
    assert len(schedule) == 1


def test_a_record_waiting_long_does_not_block_one_behind_it_due_sooner() -> None:
    schedule = assigned(100)
    scheduled(schedule, 0, 1, due_at=3600.0)
    scheduled(schedule, 0, 2, due_at=1.0)

    assert schedule.pop_due(now=2.0, limit=10) == [Due(0, 2, b"p0o2")]


def test_pop_due_respects_the_limit_and_leaves_the_rest() -> None:
    schedule = assigned(100)
    for offset in range(5):
        scheduled(schedule, 0, offset, due_at=float(offset))

    assert [d.offset for d in schedule.pop_due(now=10.0, limit=2)] == [0, 1]
    assert [d.offset for d in schedule.pop_due(now=10.0, limit=10)] == [2, 3, 4]
    assert schedule.pop_due(now=10.0, limit=10) == []


def test_equal_due_times_come_out_by_partition_then_offset() -> None:
    schedule = assigned(100)
    scheduled(schedule, 1, 7, due_at=5.0)
    scheduled(schedule, 0, 8, due_at=5.0)
    scheduled(schedule, 0, 9, due_at=5.0)

    assert [(d.partition, d.offset) for d in schedule.pop_due(5.0, 10)] == [(0, 8), (0, 9), (1, 7)]


def test_times_before_the_epoch_are_due_at_once() -> None:
    schedule = assigned(100)
    scheduled(schedule, 0, 1, due_at=10.0)
    scheduled(schedule, 0, 2, due_at=-0.0)
    scheduled(schedule, 0, 3, due_at=-50.0)

    assert [d.offset for d in schedule.pop_due(0.0, 10)] == [2, 3]


def test_next_due_in_says_how_long_the_poll_may_block() -> None:
    schedule = assigned(100)
    assert schedule.next_due_in(now=0.0) is None

    scheduled(schedule, 0, 1, due_at=12.5)

    assert schedule.next_due_in(now=10.0) == 2.5
    assert schedule.next_due_in(now=20.0) == 0.0


def test_lag_is_how_late_the_most_overdue_retry_is() -> None:
    schedule = assigned(100)
    assert schedule.lag(now=100.0) == 0.0

    scheduled(schedule, 0, 1, due_at=90.0)
    scheduled(schedule, 0, 2, due_at=95.0)

    assert schedule.lag(now=80.0) == 0.0
    assert schedule.lag(now=100.0) == 10.0


def test_a_retry_can_be_scheduled_again_after_a_failed_send() -> None:
    schedule = assigned(100)
    scheduled(schedule, 0, 1, due_at=1.0)
    [due] = schedule.pop_due(2.0, 10)

    assert schedule.add(due.partition, due.offset, 30.0, due.payload)

    assert schedule.pop_due(29.0, 10) == []
    assert schedule.pop_due(30.0, 10) == [due]


def test_nan_is_not_a_due_time() -> None:
    schedule = assigned(100)
    schedule.track(0, 1)

    with pytest.raises(ValueError):
        schedule.add(0, 1, float("nan"), b"")


# --- commit watermark ---------------------------------------------------------------


def test_nothing_is_committable_before_anything_is_tracked() -> None:
    schedule = assigned(100)

    assert schedule.committable(0) is None
    assert schedule.committable(7) is None


def test_the_committable_offset_is_the_lowest_not_done() -> None:
    schedule = assigned(100)
    for offset in (10, 11, 12):
        schedule.track(0, offset)

    assert schedule.committable(0) == 10
    schedule.mark_done(0, 10)
    assert schedule.committable(0) == 11


def test_out_of_order_completion_holds_the_watermark_until_the_gap_closes() -> None:
    schedule = assigned(100)
    for offset in (10, 11, 12, 13):
        schedule.track(0, offset)
    schedule.mark_committed(0, 10)

    schedule.mark_done(0, 12)
    schedule.mark_done(0, 13)
    assert schedule.committable(0) is None  # still 10: offset 10 waits

    schedule.mark_done(0, 10)
    assert schedule.committable(0) == 11

    schedule.mark_done(0, 11)
    assert schedule.committable(0) == 14


def test_offset_gaps_from_compaction_or_transactions_are_skipped() -> None:
    schedule = assigned(100)
    for offset in (5, 9, 20):
        schedule.track(0, offset)

    schedule.mark_done(0, 5)
    assert schedule.committable(0) == 9
    schedule.mark_done(0, 20)
    assert schedule.committable(0) == 9
    schedule.mark_done(0, 9)
    assert schedule.committable(0) == 21


def test_committable_only_reports_an_advance_since_the_last_commit() -> None:
    schedule = assigned(100)
    schedule.track(0, 1)
    schedule.mark_done(0, 1)
    assert schedule.committable(0) == 2

    schedule.mark_committed(0, 2)

    assert schedule.committable(0) is None
    schedule.track(0, 2)
    assert schedule.committable(0) is None
    schedule.mark_done(0, 2)
    assert schedule.committable(0) == 3


def test_committable_offsets_lists_every_partition_that_moved() -> None:
    schedule = assigned(100)
    for partition in (0, 1, 2):
        schedule.track(partition, 100)
    schedule.mark_done(0, 100)
    schedule.mark_done(2, 100)
    schedule.mark_committed(1, 100)

    assert schedule.committable_offsets() == {0: 101, 2: 101}


def test_a_redelivered_offset_is_not_tracked_twice() -> None:
    schedule = assigned(100)
    assert schedule.track(0, 5)
    assert schedule.track(0, 6)

    assert not schedule.track(0, 6)
    assert not schedule.track(0, 3)


def test_records_of_a_partition_not_assigned_are_skipped() -> None:
    schedule = assigned(100, range(1))

    assert not schedule.track(1, 5)
    assert schedule.committable(1) is None
    assert not schedule.is_full(1)


def test_done_twice_or_unknown_offsets_are_ignored() -> None:
    schedule = assigned(100)
    schedule.track(0, 5)
    schedule.track(0, 6)

    assert schedule.mark_done(0, 6)
    assert not schedule.mark_done(0, 6)
    assert not schedule.mark_done(0, 4)
    assert not schedule.mark_done(0, 7)
    assert not schedule.mark_done(3, 5)
    assert schedule.mark_done(0, 5)
    assert not schedule.mark_done(0, 5)
    assert schedule.committable(0) == 7


def test_the_watermark_stays_right_over_many_records() -> None:
    schedule = assigned(100_000)
    offsets = list(range(0, 30_000, 3))  # gaps everywhere
    for offset in offsets:
        schedule.track(0, offset)

    for offset in offsets[1:]:  # everything but the first, in order
        schedule.mark_done(0, offset)
    assert schedule.committable(0) == 0
    schedule.mark_done(0, 0)
    assert schedule.committable(0) == offsets[-1] + 1

    schedule.track(0, 40_000)
    assert schedule.committable(0) == 40_000


# --- capacity, pause and resume -------------------------------------------------------


def test_a_partition_is_full_at_its_share_and_has_room_again_at_three_quarters() -> None:
    schedule = Schedule(capacity=8)
    schedule.assign([0, 1])  # a share of 4 each
    for offset in range(4):
        schedule.track(0, offset)

    assert schedule.is_full(0)
    assert not schedule.is_full(1)
    assert not schedule.has_room(0)

    schedule.mark_done(0, 0)
    assert not schedule.is_full(0)
    assert schedule.has_room(0)


def test_done_records_behind_a_waiting_one_still_take_room() -> None:
    schedule = Schedule(capacity=4)
    schedule.assign([0])
    for offset in range(4):
        schedule.track(0, offset)

    for offset in (1, 2, 3):
        schedule.mark_done(0, offset)

    assert schedule.is_full(0)
    schedule.mark_done(0, 0)
    assert schedule.has_room(0)


def test_shares_follow_the_assignment() -> None:
    schedule = Schedule(capacity=6)
    schedule.assign([0, 1, 2])
    schedule.track(0, 0)
    schedule.track(0, 1)
    assert schedule.is_full(0)

    schedule.revoke([1, 2])

    assert not schedule.is_full(0)


def test_every_partition_gets_at_least_one_record() -> None:
    schedule = Schedule(capacity=2)
    schedule.assign(range(5))

    assert not schedule.is_full(4)
    schedule.track(4, 0)
    assert schedule.is_full(4)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Schedule(0)


# --- revoke ---------------------------------------------------------------------------


def test_revoke_drops_the_partitions_retries_and_tracking() -> None:
    schedule = assigned(100)
    scheduled(schedule, 0, 1, due_at=1.0)
    scheduled(schedule, 1, 1, due_at=2.0)
    scheduled(schedule, 1, 2, due_at=3.0)

    schedule.revoke([1])

    assert len(schedule) == 1
    assert schedule.pop_due(10.0, 10) == [Due(0, 1, b"p0o1")]
    assert schedule.committable(1) is None
    assert not schedule.mark_done(1, 1)  # a late acknowledgement
    assert not schedule.add(1, 2, 5.0, b"late")  # a late re-schedule
    assert len(schedule) == 0


def test_a_partition_assigned_again_starts_fresh() -> None:
    schedule = assigned(100)
    schedule.track(0, 10)
    schedule.mark_done(0, 10)
    schedule.mark_committed(0, 11)

    schedule.revoke([0])
    assert not schedule.track(0, 8)
    schedule.assign([0])

    assert schedule.track(0, 8)  # re-read from an older commit by the last owner
    assert schedule.committable(0) == 8


def test_revoking_unknown_partitions_is_harmless() -> None:
    schedule = assigned(100)
    scheduled(schedule, 0, 1, due_at=1.0)

    schedule.revoke([5])

    assert len(schedule) == 1
