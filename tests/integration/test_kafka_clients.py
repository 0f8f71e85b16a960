"""RecordProducer, RecordReader and GroupConsumer against the real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from dlq_operator.envelope import KafkaRecord
from dlq_operator.errors import (
    KafkaUnavailable,
    RecordRejected,
    RecordTooLarge,
    TopicNotFound,
    TopicOperationRefused,
)
from dlq_operator.kafka import (
    GroupConsumer,
    RecordProducer,
    RecordReader,
    TopicAdmin,
    TopicSpec,
)
from dlq_operator.settings import KafkaSettings


@pytest.fixture
def reader(settings: KafkaSettings) -> Iterator[RecordReader]:
    with RecordReader(settings) as reader:
        yield reader


def test_headers_round_trip(
    admin: TopicAdmin, producer: RecordProducer, reader: RecordReader, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}roundtrip"
    admin.create_topics([TopicSpec(topic, 2)])
    records = [
        KafkaRecord(topic, b"k1", b'{"a":1}', [("error-code", b"E1"), ("x-dlq-id", b"t/0/1")]),
        KafkaRecord(topic, None, b"no key", []),
        KafkaRecord(topic, b"k1", b"\xff\x00", [("empty", b""), ("dup", b"1"), ("dup", b"2")]),
        KafkaRecord(topic, None, None, [("only", b"headers")]),  # type: ignore[arg-type]
    ]
    stored = [producer.send_and_wait(record) for record in records]
    assert stored[0].topic == topic and stored[0].partition == stored[2].partition

    ends = reader.end_offsets(topic)
    assert sum(ends.values()) == 4
    read = list(reader.read_range(topic, {p: (0, end) for p, end in ends.items()}))
    by_position = {(r.partition, r.offset): r for r in read}
    for record, where in zip(records, stored, strict=True):
        got = by_position[(where.partition, where.offset)]
        assert (got.key, got.value, got.headers) == (
            record.key,
            record.value if record.value is not None else b"",
            record.headers,
        )
        assert got.timestamp_ms > 0
    again = reader.read_one(topic, stored[2].partition, stored[2].offset)
    assert again is not None and again.value == b"\xff\x00"


def test_unknown_topic_is_reported_missing(producer: RecordProducer, topic_prefix: str) -> None:
    # Not found, rather than unreachable after waiting out the metadata timeout.
    with pytest.raises(TopicNotFound):
        producer.send_and_wait(KafkaRecord(f"{topic_prefix}missing", b"k", b"v", []))


def test_refused_records_are_told_apart(
    admin: TopicAdmin, producer: RecordProducer, topic_prefix: str
) -> None:
    small, compacted = f"{topic_prefix}small", f"{topic_prefix}compacted"
    admin.create_topics(
        [
            TopicSpec(small, 1, None, {"max.message.bytes": "1000"}),
            TopicSpec(compacted, 1, None, {"cleanup.policy": "compact"}),
        ]
    )

    with pytest.raises(RecordTooLarge) as too_large:
        producer.send_and_wait(KafkaRecord(small, b"k", b"x" * 5000, []))
    assert isinstance(too_large.value, TopicOperationRefused)
    with pytest.raises(RecordRejected) as rejected:
        producer.send_and_wait(KafkaRecord(compacted, None, b"a value without key", []))
    assert not isinstance(rejected.value, RecordTooLarge)

    assert producer.send_and_wait(KafkaRecord(small, b"k", b"x" * 100, [])).offset == 0
    assert producer.send_and_wait(KafkaRecord(compacted, b"k", b"keyed", [])).offset == 0


def records_with_one_too_large(
    admin: TopicAdmin, topic: str, count: int, too_large: int
) -> list[KafkaRecord]:
    """``count`` small records for a new topic that takes 1000 bytes at most, one of them
    (at ``too_large``) larger than that."""
    admin.create_topics([TopicSpec(topic, 1, None, {"max.message.bytes": "1000"})])
    records = [KafkaRecord(topic, b"k", b"%d" % n, []) for n in range(count)]
    records[too_large] = KafkaRecord(topic, b"k", b"x" * 5000, [])
    return records


def test_refusal_among_pipelined_records_is_reported_only_for_its_record(
    admin: TopicAdmin, producer: RecordProducer, reader: RecordReader, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}pipelined"
    records = records_with_one_too_large(admin, topic, 30, too_large=10)

    futures = [producer.send(record) for record in records]
    errors = [future.exception(timeout=30) for future in futures]

    assert isinstance(errors[10], RecordTooLarge)
    others = [error for n, error in enumerate(errors) if n != 10 and error is not None]
    assert all(isinstance(error, KafkaUnavailable) for error in others), others
    for n, error in enumerate(errors):
        if n != 10 and error is not None:
            producer.send_and_wait(records[n])
    stored = [r.value for r in reader.read_range(topic, {0: (0, 100)})]
    assert sorted(stored, key=int) == [b"%d" % n for n in range(30) if n != 10]


def test_queued_deliveries_tell_each_outcome_after_a_flush(
    admin: TopicAdmin, producer: RecordProducer, topic_prefix: str
) -> None:
    records = records_with_one_too_large(admin, f"{topic_prefix}queued", 20, too_large=5)

    deliveries = [producer.queue(record) for record in records]
    missing = producer.queue(KafkaRecord(f"{topic_prefix}missing", b"k", b"v", []))
    producer.flush(30)
    deadline = time.monotonic() + 10
    while not all(delivery.done() for delivery in deliveries):
        assert time.monotonic() < deadline, "deliveries never settled"
        time.sleep(0.01)

    assert isinstance(missing.exception(), TopicNotFound)
    assert isinstance(deliveries[5].exception(), RecordTooLarge)
    assert all(
        delivery.exception() is None or isinstance(delivery.exception(), KafkaUnavailable)
        for n, delivery in enumerate(deliveries)
        if n != 5
    )
    assert deliveries[0].exception() is None


def test_reader_offsets_and_bounded_reads(
    admin: TopicAdmin, producer: RecordProducer, reader: RecordReader, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}offsets"
    admin.create_topics([TopicSpec(topic, 2)])
    stored = [producer.send_and_wait(KafkaRecord(topic, b"key", b"%d" % n, [])) for n in range(7)]
    partition, other = stored[0].partition, 1 - stored[0].partition

    assert reader.partitions_for(topic) == [0, 1]
    assert reader.beginning_offsets(topic) == {0: 0, 1: 0}
    assert reader.end_offsets(topic) == {partition: 7, other: 0}
    assert reader.offsets_for_times(topic, 0) == {partition: 0, other: None}
    assert reader.offsets_for_times(topic, int(time.time() * 1000) + 60_000) == {0: None, 1: None}
    with pytest.raises(TopicNotFound):
        reader.end_offsets(f"{topic_prefix}missing")

    # Past the end, a read stops (waiting for new records would end in KafkaUnavailable).
    read = reader.read_range(topic, {partition: (2, 1000), other: (0, 9)})
    assert [r.value for r in read] == [b"2", b"3", b"4", b"5", b"6"]
    limited = reader.read_range(topic, {partition: (1, 7)}, max_records=3)
    assert [r.offset for r in limited] == [1, 2, 3]
    assert list(reader.read_range(topic, {partition: (7, 10)})) == []

    admin.delete_records({topic: {partition: 3}})
    assert reader.read_one(topic, partition, 1) is None
    assert [r.offset for r in reader.read_range(topic, {partition: (0, 4)})] == [3]


def test_first_record_timestamps_of_many_partitions_at_once(
    admin: TopicAdmin, producer: RecordProducer, reader: RecordReader, topic_prefix: str
) -> None:
    stamped, empty = f"{topic_prefix}stamped", f"{topic_prefix}unstamped"
    admin.create_topics([TopicSpec(stamped, 1), TopicSpec(empty, 2)])
    for n in range(3):
        producer.send_and_wait(KafkaRecord(stamped, None, b"%d" % n, []))
        time.sleep(0.01)  # distinct timestamps
    written = {r.offset: r.timestamp_ms for r in reader.read_range(stamped, {0: (0, 3)})}

    found = reader.first_timestamps({(stamped, 0): 1, (empty, 0): 0, (empty, 1): 5})

    assert found == {(stamped, 0): written[1]}
    assert reader.first_timestamps({(stamped, 0): 3}) == {}  # at the end: no record


def poll_until(
    consumer: GroupConsumer, count: int, timeout: float = 20, poll_ms: int = 200
) -> list:
    records: list = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        assert time.monotonic() < deadline, f"got {len(records)} of {count} records"
        records += consumer.poll(poll_ms)
    return records


def test_group_consumer_commits_pauses_and_rebalances(
    settings: KafkaSettings,
    admin: TopicAdmin,
    producer: RecordProducer,
    topic_prefix: str,
    unique: str,
) -> None:
    topic, group = f"{topic_prefix}group", f"group-{unique}"
    admin.create_topics([TopicSpec(topic, 2)])
    for n in range(40):
        producer.send(KafkaRecord(topic, b"key%d" % n, b"%d" % n, []))
    producer.flush(10)
    assigned, revoked = [], []

    def on_revoke(partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        revoked.append(partitions)
        return {(topic, 1): 1}

    consumer = GroupConsumer(
        settings, group, [topic], on_assign=assigned.append, on_revoke=on_revoke, max_poll_records=5
    )
    # A member may first join before it knows the topic's partitions; it then joins again,
    # which takes a while on a busy machine.
    first = poll_until(consumer, 5, timeout=90)
    assert assigned[-1] == {(topic, 0), (topic, 1)}
    assert consumer.assignment() == {(topic, 0), (topic, 1)}
    # No committed offsets yet: each partition is read from its oldest record.
    assert set({r.partition: r.offset for r in reversed(first)}.values()) == {0}

    consumer.commit({(topic, 0): 2})
    assert admin.committed_offsets({group: {topic}}) == {group: {topic: {0: 2}}}

    consumer.pause([(topic, 1)])
    consumer.seek((topic, 0), 0)
    paused = poll_until(consumer, 3)
    assert {r.partition for r in paused} == {0}
    assert paused[0].offset == 0, "seek did not rewind"
    consumer.resume([(topic, 1)])
    consumer.close()

    assert revoked[-1] == {(topic, 0), (topic, 1)}
    assert admin.committed_offsets({group: {topic}}) == {group: {topic: {0: 2, 1: 1}}}

    with GroupConsumer(settings, group, [topic]) as successor:
        records = poll_until(successor, 40 - 3, timeout=90)
    starts = {p: min(r.offset for r in records if r.partition == p) for p in (0, 1)}
    assert starts == {0: 2, 1: 1}


def test_group_consumer_gets_a_topic_created_after_it_joined(
    settings: KafkaSettings,
    admin: TopicAdmin,
    producer: RecordProducer,
    topic_prefix: str,
    unique: str,
) -> None:
    # A retry worker may start before the operator has created its topic: the member first
    # joins with nothing to read, and must take the partitions once the topic exists, even
    # when every poll is too short for a whole rebalance (kafka-python alone then keeps the
    # empty assignment for good: see finish_interrupted_join).
    topic = f"{topic_prefix}late"
    with GroupConsumer(settings, f"late-{unique}", [topic]) as consumer:
        consumer.poll(2000)
        assert consumer.assignment() == set()
        admin.create_topics([TopicSpec(topic, 2)])
        producer.send_and_wait(KafkaRecord(topic, None, b"late", []))
        records = poll_until(consumer, 1, timeout=30, poll_ms=5)
        assert [r.value for r in records] == [b"late"]
        assert consumer.assignment() == {(topic, 0), (topic, 1)}
