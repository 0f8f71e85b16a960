"""The replay loop, run against in-memory implementations of its own protocols.

Time is a fake clock that sleeping advances: nothing here waits for real time.
"""

import copy
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dlq_operator.api import MessageSelector, ReplaySample, ReprocessPhase, ReprocessTarget
from dlq_operator.envelope import DlqEnvelope, KafkaRecord, encode_dlq_record, header_value
from dlq_operator.errors import KafkaUnavailable
from dlq_operator.kafka import ConsumedRecord
from dlq_operator.reprocess.engine import ReplayOutcome, run_replay
from dlq_operator.reprocess.progress import Progress
from dlq_operator.reprocess.ratelimit import RateLimiter
from dlq_operator.reprocess.selection import plan_ranges

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE_MS = int(BASE.timestamp() * 1000)
DLQ = "orders.dlq"


def dead_letter(partition: int, offset: int, **overrides: Any) -> ConsumedRecord:
    """Record ``offset``: error TIMEOUT every third, key k0..k3, tenant t1/t2, one per second."""
    fields: dict[str, Any] = {
        "originalTopic": "orders",
        "originalPartition": partition,
        "originalOffset": str(1000 + offset),
        "originalKey": f"k{offset % 4}",
        "originalTimestamp": "2026-03-01T11:00:00.000Z",
        "event": {"n": offset},
        "error": "boom",
        "errorCode": "TIMEOUT" if offset % 3 == 0 else None,
        "consumerGroup": "orders-service",
        "processingTimestamp": "2026-03-01T11:00:01.000Z",
        "retryCount": 1,
    }
    fields.update(overrides)
    written = encode_dlq_record(DlqEnvelope.model_validate(fields))
    tenant = b"t1" if offset % 2 == 0 else b"t2"
    return ConsumedRecord(
        DLQ,
        partition,
        offset,
        BASE_MS + offset * 1000,
        written.key,
        written.value,
        [*written.headers, ("tenant", tenant)],
    )


class FakeTopic:
    """The topic replayed from: records by partition, and the broker's answers about them."""

    def __init__(self, records: Iterable[ConsumedRecord]) -> None:
        self.partitions: dict[int, list[ConsumedRecord]] = {}
        for record in records:
            self.partitions.setdefault(record.partition, []).append(record)
        self.failing_reads = 0
        self.reads = 0

    def read_range(self, partition: int, start: int, end: int, limit: int) -> list[ConsumedRecord]:
        self.reads += 1
        if self.failing_reads:
            self.failing_reads -= 1
            raise KafkaUnavailable("broker down")
        records = self.partitions.get(partition, [])
        return [r for r in records if start <= r.offset < end][:limit]

    def retained(self) -> dict[int, tuple[int, int]]:
        return {
            p: (records[0].offset, records[-1].offset + 1) for p, records in self.partitions.items()
        }

    def offsets_for_time(self, moment: datetime | None) -> dict[int, int | None] | None:
        if moment is None:
            return None
        wanted = moment.timestamp() * 1000
        return {
            p: next((r.offset for r in records if r.timestamp_ms >= wanted), None)
            for p, records in self.partitions.items()
        }

    def plan(self, selector: MessageSelector) -> Progress:
        return Progress.start(
            plan_ranges(
                selector,
                self.retained(),
                self.offsets_for_time(selector.since),
                self.offsets_for_time(selector.until),
            )
        )


class OperatorDied(Exception):
    """The process stops in the middle of a call: not an error the engine handles."""


class FakeSink:
    """Delivers batches; ``outcomes`` says what each call does (a default delivery after)."""

    def __init__(self, clock: "FakeClock", outcomes: Sequence[str] = ()) -> None:
        self.clock = clock
        self.outcomes = list(outcomes)
        self.delivered: list[tuple[float, KafkaRecord]] = []
        self.calls = 0
        self.after_send: Callable[[], None] = lambda: None

    def send(self, records: Sequence[KafkaRecord]) -> None:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "fail":
            raise KafkaUnavailable("not enough replicas")
        self.delivered += [(self.clock.now, record) for record in records]
        if outcome == "die-before-ack":
            raise OperatorDied
        self.after_send()

    def ids(self) -> list[str]:
        return [header_value(record.headers, "x-dlq-id") or "" for _, record in self.delivered]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] = lambda: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep()


class StatusStore:
    """The checkpointer: every saved status, as the API server would have it."""

    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    def save(self, progress: Progress) -> None:
        self.saved.append(copy.deepcopy(progress.to_status()))

    def resume(self) -> Progress:
        progress = Progress.from_status(self.saved[-1])
        assert progress is not None
        return progress


class Flag:
    def __init__(self) -> None:
        self.set_ = False

    def set(self) -> None:
        self.set_ = True

    def is_set(self) -> bool:
        return self.set_


class Harness:
    def __init__(
        self, topic: FakeTopic, rate: float = 0, sink_outcomes: Sequence[str] = ()
    ) -> None:
        self.topic = topic
        self.clock = FakeClock()
        self.sink = FakeSink(self.clock, sink_outcomes)
        self.store = StatusStore()
        self.cancel = Flag()
        self.rate = rate

    def run(
        self,
        progress: Progress,
        selector: MessageSelector,
        target: ReprocessTarget | None = None,
        **options: Any,
    ) -> ReplayOutcome:
        return run_replay(
            progress,
            selector,
            target or ReprocessTarget(),
            source=self.topic,
            sink=self.sink,
            limiter=RateLimiter(self.rate, clock=self.clock),
            checkpointer=self.store,
            cancel=self.cancel,
            sleep=self.clock.sleep,
            reprocessed_by="shop/replay-1",
            **options,
        )


def two_partitions() -> FakeTopic:
    return FakeTopic([dead_letter(0, o) for o in range(10)] + [dead_letter(1, o) for o in range(6)])


def select(**fields: Any) -> MessageSelector:
    return MessageSelector.model_validate(fields)


def ids(coordinates: Iterable[tuple[int, int]]) -> list[str]:
    return [f"{DLQ}/{p}/{o}" for p, o in coordinates]


# --- selection end to end ----------------------------------------------------------------------

SELECTIONS = {
    "all": ({}, [(0, o) for o in range(10)] + [(1, o) for o in range(6)]),
    "partitions": ({"partitions": [1]}, [(1, o) for o in range(6)]),
    "offsets-inclusive": (
        {"fromOffset": 2, "toOffset": 4},
        [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)],
    ),
    "time-range": (
        {"since": BASE + timedelta(seconds=3), "until": BASE + timedelta(seconds=5)},
        [(0, 3), (0, 4), (1, 3), (1, 4)],
    ),
    "error-code": ({"errorCodes": ["TIMEOUT"]}, [(0, 0), (0, 3), (0, 6), (0, 9), (1, 0), (1, 3)]),
    "key": ({"keys": ["k1"]}, [(0, 1), (0, 5), (0, 9), (1, 1), (1, 5)]),
    "header": (
        {"headers": {"tenant": "t2"}},
        [(0, 1), (0, 3), (0, 5), (0, 7), (0, 9), (1, 1), (1, 3), (1, 5)],
    ),
    "max-partition-ascending": (
        {"maxMessages": 12},
        [(0, o) for o in range(10)] + [(1, 0), (1, 1)],
    ),
    "max-after-filters": (
        {"errorCodes": ["TIMEOUT"], "maxMessages": 5},
        [(0, 0), (0, 3), (0, 6), (0, 9), (1, 0)],
    ),
}


@pytest.mark.parametrize(("fields", "expected"), SELECTIONS.values(), ids=SELECTIONS.keys())
def test_each_selector_replays_exactly_the_records_it_picks(
    fields: dict[str, Any], expected: list[tuple[int, int]]
) -> None:
    harness = Harness(two_partitions())
    selector = select(**fields)

    outcome = harness.run(harness.topic.plan(selector), selector)

    assert outcome.phase == ReprocessPhase.SUCCEEDED
    assert harness.sink.ids() == ids(expected)
    assert outcome.progress.replayed == outcome.progress.matched == len(expected)


def test_records_are_replayed_to_their_original_topic_with_the_replay_headers() -> None:
    harness = Harness(FakeTopic([dead_letter(0, 3)]))

    harness.run(Progress.start({0: (3, 4)}), select())

    ((_, record),) = harness.sink.delivered
    assert record == KafkaRecord(
        "orders",
        b"k3",
        b'{"n":3}',
        [
            ("x-retry-count", b"0"),
            ("x-original-offset", b"1003"),
            ("x-dlq-id", b"orders.dlq/0/3"),
            ("x-reprocessed-by", b"shop/replay-1"),
        ],
    )


def test_a_target_topic_and_kept_retry_counts_are_applied() -> None:
    harness = Harness(FakeTopic([dead_letter(0, 3)]))

    harness.run(
        Progress.start({0: (3, 4)}),
        select(),
        ReprocessTarget(topic="orders-replay", resetRetryCount=False),
    )

    ((_, record),) = harness.sink.delivered
    assert record.topic == "orders-replay"
    assert header_value(record.headers, "x-retry-count") == "1"


def test_the_time_of_each_record_is_checked_again_inside_the_range() -> None:
    # Offset 4 was written with an older timestamp than offset 3: the time index cannot tell.
    late = dead_letter(0, 4)._replace(timestamp_ms=BASE_MS)
    harness = Harness(FakeTopic([dead_letter(0, o) for o in range(4)] + [late, dead_letter(0, 5)]))
    selector = select(since=BASE + timedelta(seconds=2))

    outcome = harness.run(harness.topic.plan(selector), selector)

    assert harness.sink.ids() == ids([(0, 2), (0, 3), (0, 5)])
    assert outcome.progress.skipped == 1


def test_counters_add_up_and_the_checkpoint_reaches_every_end() -> None:
    harness = Harness(two_partitions())
    selector = select(errorCodes=["TIMEOUT"])

    outcome = harness.run(harness.topic.plan(selector), selector)

    progress = outcome.progress
    assert (progress.matched, progress.replayed, progress.skipped, progress.failed) == (6, 6, 10, 0)
    assert progress.done()
    assert harness.store.saved[-1] == progress.to_status()
    assert outcome.message == "6 messages replayed, 10 skipped."


def test_max_messages_stops_at_the_record_that_reached_it() -> None:
    harness = Harness(two_partitions())
    selector = select(maxMessages=12)

    outcome = harness.run(harness.topic.plan(selector), selector)

    assert outcome.progress.checkpoint[1].next_offset == 2
    assert outcome.progress.skipped == 0
    assert outcome.message.endswith("Stopped at maxMessages (12).")
    # Resumed once more (say, after a restart), it has nothing left to do.
    again = Harness(harness.topic)
    assert again.run(harness.store.resume(), selector).phase == ReprocessPhase.SUCCEEDED
    assert again.topic.reads == harness.topic.reads
    assert again.sink.delivered == []


def test_records_written_after_the_replay_started_are_not_replayed() -> None:
    # Every replayed message fails again and comes back onto the DLQ: no endless loop.
    topic = FakeTopic([dead_letter(0, o) for o in range(5)])
    harness = Harness(topic, rate=20)  # batches of 2
    progress = topic.plan(select())

    def fails_again() -> None:
        partition = topic.partitions[0]
        partition.append(dead_letter(0, partition[-1].offset + 1))

    harness.sink.after_send = fails_again

    outcome = harness.run(progress, select())

    assert outcome.phase == ReprocessPhase.SUCCEEDED
    assert harness.sink.ids() == ids((0, o) for o in range(5))


# --- records that are not envelopes ------------------------------------------------------------


def not_an_envelope(offset: int) -> ConsumedRecord:
    return ConsumedRecord(DLQ, 0, offset, BASE_MS, b"raw", b"<xml/>", [("error-code", b"PARSE")])


def test_records_that_are_not_envelopes_are_skipped_without_a_target() -> None:
    harness = Harness(FakeTopic([dead_letter(0, 0), not_an_envelope(1), dead_letter(0, 2)]))

    outcome = harness.run(Progress.start({0: (0, 3)}), select())

    assert harness.sink.ids() == ids([(0, 0), (0, 2)])
    assert outcome.progress.skipped == 1
    assert "1 records are not DLQ envelopes" in outcome.message


def test_records_that_are_not_envelopes_go_unchanged_to_a_target() -> None:
    harness = Harness(FakeTopic([dead_letter(0, 0), not_an_envelope(1)]))

    outcome = harness.run(Progress.start({0: (0, 2)}), select(), ReprocessTarget(topic="triage"))

    assert outcome.progress.replayed == 2
    _, raw = harness.sink.delivered[1]
    assert (raw.topic, raw.key, raw.value) == ("triage", b"raw", b"<xml/>")
    assert "not DLQ envelopes" not in outcome.message


# --- dry run -----------------------------------------------------------------------------------


def test_a_dry_run_counts_and_samples_and_sends_nothing() -> None:
    harness = Harness(two_partitions(), rate=1)
    selector = select(errorCodes=["TIMEOUT"])

    outcome = harness.run(harness.topic.plan(selector), selector, dry_run=True, sample_limit=3)

    assert harness.sink.calls == 0
    assert harness.clock.sleeps == []  # nothing produced, nothing to pace
    progress = outcome.progress
    assert (progress.matched, progress.replayed, progress.skipped) == (6, 0, 10)
    assert [(s.partition, s.offset) for s in outcome.samples] == [(0, 0), (0, 3), (0, 6)]
    assert outcome.samples[0] == ReplaySample(
        partition=0, offset=0, key="k0", error_code="TIMEOUT", original_topic="orders"
    )
    assert outcome.message == "Dry run: 6 messages would be replayed, 10 skipped."
    assert progress.resolved_watermarks(committed={}, low={0: 0, 1: 0}) == {}


# --- rate --------------------------------------------------------------------------------------


def test_a_replay_at_500_per_second_sends_within_10_percent_of_that_over_10_seconds() -> None:
    harness = Harness(FakeTopic(dead_letter(0, o) for o in range(8000)), rate=500)

    harness.run(Progress.start({0: (0, 8000)}), select())

    first_10_s = sum(1 for sent_at, _ in harness.sink.delivered if sent_at < 10.0)
    assert 4500 <= first_10_s <= 5500
    assert harness.sink.calls == 8000 // 50  # small batches, no big first burst
    per_second = [
        sum(1 for sent_at, _ in harness.sink.delivered if s <= sent_at < s + 1) for s in range(10)
    ]
    assert max(per_second) <= 550


# --- cancel, crash, failure --------------------------------------------------------------------


def test_cancel_stops_between_batches_and_the_replay_goes_on_from_the_checkpoint() -> None:
    harness = Harness(two_partitions(), rate=30)  # batches of 3
    sends = 0

    def cancel_after_two() -> None:
        nonlocal sends
        sends += 1
        if sends == 2:
            harness.cancel.set()

    harness.sink.after_send = cancel_after_two
    selector = select()

    outcome = harness.run(harness.topic.plan(selector), selector)

    assert outcome.phase == ReprocessPhase.CANCELLED
    assert outcome.message == "Cancelled at the checkpoint; so far 6 messages replayed, 0 skipped."
    assert harness.store.saved[-1]["checkpoint"][0]["nextOffset"] == 6

    resumed = Harness(harness.topic, rate=30)
    assert resumed.run(harness.store.resume(), selector).phase == ReprocessPhase.SUCCEEDED
    assert harness.sink.ids() + resumed.sink.ids() == ids(SELECTIONS["all"][1])


def test_after_a_crash_only_the_batch_in_flight_is_replayed_twice() -> None:
    harness = Harness(two_partitions(), rate=30, sink_outcomes=["ok", "ok", "die-before-ack"])
    selector = select()

    with pytest.raises(OperatorDied):
        harness.run(harness.topic.plan(selector), selector)
    resumed = Harness(harness.topic, rate=30)
    outcome = resumed.run(harness.store.resume(), selector)

    sent = harness.sink.ids() + resumed.sink.ids()
    twice = sorted({i for i in sent if sent.count(i) > 1})
    assert twice == ids([(0, 6), (0, 7), (0, 8)])
    assert sorted(set(sent)) == sorted(ids(SELECTIONS["all"][1]))
    assert outcome.progress.replayed == 16


def test_a_batch_that_fails_is_retried_then_the_replay_fails_at_the_last_checkpoint() -> None:
    harness = Harness(two_partitions(), rate=30, sink_outcomes=["ok", "fail", "fail", "fail"])
    selector = select()

    outcome = harness.run(harness.topic.plan(selector), selector)

    assert outcome.phase == ReprocessPhase.FAILED
    assert outcome.message == (
        "Producing to orders failed 3 times, last with: not enough replicas; "
        "so far 3 messages replayed, 0 skipped."
    )
    assert harness.clock.sleeps[-2:] == [1.0, 2.0]
    saved = harness.store.saved[-1]
    assert saved["checkpoint"][0]["nextOffset"] == 3
    assert (saved["replayed"], saved["failed"]) == (3, 3)


def test_a_batch_that_fails_once_is_sent_again() -> None:
    harness = Harness(two_partitions(), sink_outcomes=["fail"])
    selector = select()

    outcome = harness.run(harness.topic.plan(selector), selector)

    assert outcome.phase == ReprocessPhase.SUCCEEDED
    assert harness.sink.calls == 3  # partition 0 twice, partition 1 once
    assert (outcome.progress.replayed, outcome.progress.failed) == (16, 0)


def test_a_read_that_keeps_failing_fails_the_replay() -> None:
    harness = Harness(two_partitions())
    harness.topic.failing_reads = 3

    outcome = harness.run(harness.topic.plan(select()), select())

    assert outcome.phase == ReprocessPhase.FAILED
    assert outcome.message.startswith("Reading partition 0 failed 3 times, last with: broker down")
    assert harness.sink.calls == 0


def test_cancel_during_a_retry_pause_is_not_a_failure() -> None:
    harness = Harness(two_partitions(), sink_outcomes=["fail"])
    harness.clock.on_sleep = harness.cancel.set

    outcome = harness.run(harness.topic.plan(select()), select())

    assert outcome.phase == ReprocessPhase.CANCELLED
    assert outcome.progress.failed == 0


# --- resolved watermarks -----------------------------------------------------------------------


def test_a_full_replay_resolves_every_partition_to_its_end() -> None:
    harness = Harness(two_partitions())

    outcome = harness.run(harness.topic.plan(select()), select())

    assert outcome.progress.resolved_watermarks(committed={}, low={0: 0, 1: 0}) == {0: 10, 1: 6}


def test_a_selective_replay_resolves_only_up_to_the_first_record_it_left() -> None:
    harness = Harness(two_partitions())
    selector = select(errorCodes=["TIMEOUT"])

    outcome = harness.run(harness.topic.plan(selector), selector)

    # Offsets 0 are TIMEOUT in both partitions; 1 is not, and stays unresolved.
    assert outcome.progress.resolved_watermarks(committed={}, low={0: 0, 1: 0}) == {0: 1, 1: 1}
