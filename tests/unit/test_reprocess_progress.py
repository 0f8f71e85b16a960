"""A replay's progress: counters and checkpoint in status, and the resolved watermarks."""

import pytest

from dlq_operator.api import PartitionCheckpoint, ReplaySample
from dlq_operator.reprocess.progress import Progress

PLAN = {1: (0, 50), 0: (10, 30)}


def test_a_new_replay_starts_each_partition_at_its_planned_start() -> None:
    progress = Progress.start(PLAN)

    assert list(progress.checkpoint) == [0, 1]
    assert progress.checkpoint[0] == PartitionCheckpoint(partition=0, next_offset=10, end_offset=30)
    assert (progress.matched, progress.replayed, progress.skipped, progress.failed) == (0, 0, 0, 0)


def test_status_is_camel_case_json_and_reads_back_the_same() -> None:
    progress = Progress.start(PLAN)
    progress.advance(0, 20, matched=8, replayed=8, skipped=2)
    progress.fail(3)
    progress.samples.append(ReplaySample(partition=0, offset=11, error_code="TIMEOUT"))

    status = progress.to_status()

    assert status == {
        "matched": 8,
        "replayed": 8,
        "skipped": 2,
        "failed": 3,
        "checkpoint": [
            {"partition": 0, "nextOffset": 20, "endOffset": 30},
            {"partition": 1, "nextOffset": 0, "endOffset": 50},
        ],
        "samples": [{"partition": 0, "offset": 11, "errorCode": "TIMEOUT"}],
    }
    assert Progress.from_status({**status, "phase": "Running", "conditions": []}) == progress


def test_a_status_without_a_checkpoint_has_not_been_planned() -> None:
    assert Progress.from_status({}) is None
    assert Progress.from_status({"phase": "Pending"}) is None


def test_a_replay_planned_over_nothing_is_done_at_once() -> None:
    progress = Progress.from_status({"checkpoint": []})

    assert progress is not None
    assert progress.done()


def test_done_when_every_partition_is_read_or_max_messages_matched() -> None:
    progress = Progress.start(PLAN)
    progress.advance(0, 30, matched=5, replayed=5)

    assert not progress.done()
    assert progress.done(max_messages=5)
    progress.advance(1, 50)
    assert progress.done()


@pytest.mark.parametrize("offset", [15, 31])
def test_the_checkpoint_never_moves_back_or_past_the_end(offset: int) -> None:
    progress = Progress.start(PLAN)
    progress.advance(0, 20)

    with pytest.raises(ValueError, match="partition 0"):
        progress.advance(0, offset)


# --- resolved watermarks -----------------------------------------------------------------------


def test_a_replay_of_everything_from_the_start_moves_the_watermark_along() -> None:
    progress = Progress.start({0: (0, 100)})
    progress.advance(0, 40, matched=40, replayed=40)

    assert progress.resolved_watermarks(committed={}, low={0: 0}) == {0: 40}
    assert progress.resolved_watermarks(committed={0: 40}, low={0: 0}) == {}


def test_a_replay_starting_above_the_watermark_leaves_the_gap_unresolved() -> None:
    progress = Progress.start({0: (50, 100)})  # fromOffset 50
    progress.advance(0, 60, matched=10, replayed=10)

    assert progress.resolved_watermarks(committed={0: 20}, low={0: 0}) == {}
    # Once the records below were resolved (by an earlier replay), it goes on from there.
    assert progress.resolved_watermarks(committed={0: 50}, low={0: 0}) == {0: 60}


def test_records_below_the_partitions_start_need_no_resolving() -> None:
    progress = Progress.start({0: (50, 100)})  # retention deleted 0..49
    progress.advance(0, 60, matched=10, replayed=10)

    assert progress.resolved_watermarks(committed={0: 3}, low={0: 50}) == {0: 60}


def test_a_skipped_record_stops_the_watermark_for_the_rest_of_the_run() -> None:
    progress = Progress.start({0: (0, 100)})
    progress.advance(0, 10, matched=10, replayed=10)
    progress.advance(0, 20, matched=9, replayed=9, skipped=1, first_unreplayed=13)
    progress.advance(0, 30, matched=10, replayed=10)

    assert progress.resolved_watermarks(committed={}, low={0: 0}) == {0: 13}


def test_a_dry_run_resolves_nothing() -> None:
    progress = Progress.start({0: (0, 100)})
    progress.advance(0, 30, matched=30, first_unreplayed=0)

    assert progress.resolved_watermarks(committed={}, low={0: 0}) == {}


def test_after_a_restart_the_span_starts_at_the_checkpoint() -> None:
    before = Progress.start({0: (0, 100)})
    before.advance(0, 20, matched=20, replayed=20)
    # The watermark was committed before the checkpoint was saved.
    committed = before.resolved_watermarks(committed={}, low={0: 0})
    after = Progress.from_status(before.to_status())
    assert after is not None
    after.advance(0, 35, matched=15, replayed=15)

    assert after.resolved_watermarks(committed=committed, low={0: 0}) == {0: 35}
    # Had the watermark been left behind, the restarted run could not vouch for the gap.
    assert after.resolved_watermarks(committed={0: 10}, low={0: 0}) == {}


def test_partitions_without_a_known_low_are_left_alone() -> None:
    progress = Progress.start(PLAN)
    progress.advance(0, 30, matched=20, replayed=20)
    progress.advance(1, 5, matched=5, replayed=5)

    assert progress.resolved_watermarks(committed={}, low={1: 0}) == {1: 5}
