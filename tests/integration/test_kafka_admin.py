"""TopicAdmin against the real broker: topics, batched offsets, groups, outages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from kafka.net.manager import KafkaConnectionManager
from pytest_mock import MockerFixture

from dlq_operator.envelope import KafkaRecord
from dlq_operator.errors import KafkaUnavailable, TopicNotFound, TopicOperationRefused
from dlq_operator.kafka import RecordProducer, TopicAdmin, TopicSpec
from dlq_operator.kafka.offsets import PipelinedOffsets
from dlq_operator.settings import KafkaSettings


@pytest.fixture
def settings(kafka_bootstrap: str) -> KafkaSettings:
    # Shorter than the other adapter tests: the outage tests wait out this timeout.
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, request_timeout_ms=3000)


@pytest.fixture
def requests_sent(mocker: MockerFixture) -> Callable[[], int]:
    """Requests sent since the fixture was made by TopicAdmins with the default client id
    ("dlq-operator-admin": its admin client and its offsets consumer), metadata refreshes
    included. Every request of a kafka-python client goes through
    ``KafkaConnectionManager.send`` (kafka-python 3.0.12)."""
    send = mocker.spy(KafkaConnectionManager, "send")

    def sent() -> int:
        return sum(
            call.args[0].config["client_id"].startswith("dlq-operator-admin")
            for call in send.call_args_list
        )

    return sent


def produce(producer: RecordProducer, topic: str, counts: dict[bytes, int]) -> None:
    """For each key, that many records with that key."""
    for key, count in counts.items():
        for n in range(count):
            producer.send(KafkaRecord(topic, key, b"v%d" % n, []))
    producer.flush(10)


def test_create_without_waiting(admin: TopicAdmin, topic_prefix: str) -> None:
    topic = f"{topic_prefix}unwaited"

    assert admin.create_topics([TopicSpec(topic, 4)], wait=False) == set()

    deadline = time.monotonic() + 15
    while not (found := admin.describe_topics([topic])):
        assert time.monotonic() < deadline, f"{topic} never showed up"
        time.sleep(0.05)
    assert found[topic].partitions == 4


def test_offsets_of_a_topic_created_since_the_last_call(
    admin: TopicAdmin, producer: RecordProducer, topic_prefix: str
) -> None:
    known, new = f"{topic_prefix}known", f"{topic_prefix}new"
    admin.create_topics([TopicSpec(known, 2)])
    produce(producer, known, {b"a": 2})
    assert sum(high for _, high in admin.list_offsets([known])[known].values()) == 2

    admin.create_topics([TopicSpec(new, 3)])
    produce(producer, new, {b"b": 4})
    offsets = admin.list_offsets([known, new])

    assert sum(high for _, high in offsets[known].values()) == 2
    assert sorted(offsets[new]) == [0, 1, 2]
    assert sum(high - low for low, high in offsets[new].values()) == 4


def test_topic_lifecycle(admin: TopicAdmin, topic_prefix: str) -> None:
    first, second, missing = (f"{topic_prefix}{name}" for name in ("first", "second", "missing"))
    specs = [
        TopicSpec(first, 3, None, {"retention.ms": "3600000", "cleanup.policy": "delete"}),
        TopicSpec(second, 1, 1),
    ]

    assert admin.create_topics(specs) == set()
    assert admin.create_topics(specs) == {first, second}
    described = admin.describe_topics([first, second, missing])
    assert set(described) == {first, second}
    assert (described[first].partitions, described[first].replication_factor) == (3, 1)
    assert described[first].configs == {"retention.ms": "3600000", "cleanup.policy": "delete"}
    assert described[second].configs == {}

    admin.alter_topic_configs(
        {first: {"retention.ms": "60000"}, second: {"max.message.bytes": "2048"}}
    )
    admin.create_partitions({second: 4})
    described = admin.describe_topics([first, second])
    assert described[first].configs == {"retention.ms": "60000", "cleanup.policy": "delete"}
    assert described[second].configs == {"max.message.bytes": "2048"}
    assert described[second].partitions == 4

    admin.alter_topic_configs({first: {"cleanup.policy": None}})
    assert admin.describe_topics([first])[first].configs == {"retention.ms": "60000"}

    admin.delete_topics([first, second, missing])
    assert not admin.topic_exists(first)
    assert admin.describe_topics([first, second]) == {}


def test_refused_operations(admin: TopicAdmin, topic_prefix: str) -> None:
    topic = f"{topic_prefix}refused"
    admin.create_topics([TopicSpec(topic, 2)])

    with pytest.raises(TopicOperationRefused, match="replication factor"):
        admin.create_topics([TopicSpec(f"{topic_prefix}wide", 1, 3)])
    with pytest.raises(TopicOperationRefused, match=r"no\.such\.config"):
        admin.alter_topic_configs({topic: {"no.such.config": "1"}})
    with pytest.raises(TopicOperationRefused, match="not be an increase"):
        admin.create_partitions({topic: 1})
    with pytest.raises(TopicNotFound):
        admin.alter_topic_configs({f"{topic_prefix}missing": {"retention.ms": "1"}})
    with pytest.raises(TopicNotFound):
        admin.delete_records({f"{topic_prefix}missing": {0: -1}})
    assert admin.broker_default_replication_factor() == 1


def test_list_offsets_of_many_topics_in_few_requests(
    admin: TopicAdmin,
    producer: RecordProducer,
    topic_prefix: str,
    requests_sent: Callable[[], int],
) -> None:
    topics = [f"{topic_prefix}many{n}" for n in range(50)]
    admin.create_topics([TopicSpec(topic, 3) for topic in topics])
    produce(producer, topics[7], {b"a": 5, b"b": 2})
    missing = f"{topic_prefix}missing"

    offsets = admin.list_offsets([*topics, missing])
    assert set(offsets) == set(topics)
    assert all(set(partitions) == {0, 1, 2} for partitions in offsets.values())
    assert offsets[topics[0]] == {0: (0, 0), 1: (0, 0), 2: (0, 0)}
    assert sum(high - low for low, high in offsets[topics[7]].values()) == 7

    def requests_for(names: list[str]) -> int:
        before = requests_sent()
        admin.list_offsets(names)
        return requests_sent() - before

    # One broker: a metadata request, then a ListOffsets request for the earliest and one
    # for the latest offsets, however many topics.
    assert requests_for([*topics, missing]) == requests_for(topics[:1]) == 3
    assert admin.list_offsets([missing]) == {}


def test_list_offsets_with_cached_partitions(
    settings: KafkaSettings,
    producer: RecordProducer,
    topic_prefix: str,
    requests_sent: Callable[[], int],
) -> None:
    topic, missing = f"{topic_prefix}cached", f"{topic_prefix}missing"
    with TopicAdmin(settings, partition_cache_seconds=300) as admin:
        admin.create_topics([TopicSpec(topic, 2)])
        assert admin.list_offsets([topic, missing]) == {topic: {0: (0, 0), 1: (0, 0)}}
        produce(producer, topic, {b"a": 3})

        before = requests_sent()
        offsets = admin.list_offsets([topic])
        # Partitions from the cache: only the two ListOffsets requests.
        assert requests_sent() - before == 2
        assert sum(high for _, high in offsets[topic].values()) == 3
        # A topic not seen (yet) is asked about every time.
        before = requests_sent()
        assert admin.list_offsets([missing]) == {}
        assert requests_sent() - before == 1


def test_committed_offsets_of_several_groups(
    admin: TopicAdmin, topic_prefix: str, unique: str
) -> None:
    one, two = f"{topic_prefix}one", f"{topic_prefix}two"
    admin.create_topics([TopicSpec(one, 2), TopicSpec(two, 1)])
    resolved, retry, idle = (f"{name}-{unique}" for name in ("resolved", "retry", "idle"))

    admin.commit_group_offsets(resolved, {(one, 0): 4, (one, 1): 2, (two, 0): 9})
    admin.commit_group_offsets(retry, {(two, 0): 1})

    committed = admin.committed_offsets({resolved: {one}, retry: {one, two}, idle: {one}})
    assert committed == {resolved: {one: {0: 4, 1: 2}}, retry: {two: {0: 1}}}

    admin.commit_group_offsets(resolved, {(one, 0): 5})
    assert admin.committed_offsets({resolved: {one}})[resolved][one] == {0: 5, 1: 2}


def test_delete_records_moves_low(
    admin: TopicAdmin, producer: RecordProducer, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}purge"
    admin.create_topics([TopicSpec(topic, 1)])
    produce(producer, topic, {b"k": 10})

    assert admin.delete_records({topic: {0: 6}}) == {topic: {0: 6}}
    assert admin.list_offsets([topic]) == {topic: {0: (6, 10)}}
    assert admin.delete_records({topic: {0: -1}}) == {topic: {0: 10}}
    assert admin.list_offsets([topic]) == {topic: {0: (10, 10)}}


def test_broker_outage_is_reported_and_survived(
    platform, settings: KafkaSettings, admin: TopicAdmin, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}outage"
    admin.create_topics([TopicSpec(topic, 1)])
    outage_producer = RecordProducer(
        settings, client_id="test-outage", delivery_timeout_ms=4000, linger_ms=0
    )
    outage_producer.send_and_wait(KafkaRecord(topic, b"k", b"before", []))
    threads = threading.active_count()

    platform.stop("kafka")
    try:
        with pytest.raises(KafkaUnavailable, match=settings.bootstrap_servers):
            admin.list_offsets([topic])
        with pytest.raises(KafkaUnavailable):
            admin.committed_offsets({"some-group": {topic}})

        never_connected = TopicAdmin(settings)
        with pytest.raises(KafkaUnavailable):
            never_connected.topic_exists(topic)
        assert threading.active_count() == threads, "a failed connection left its IO thread"

        with pytest.raises(KafkaUnavailable):
            outage_producer.send_and_wait(KafkaRecord(topic, b"k", b"during", []))
    finally:
        platform.start("kafka")

    deadline = time.monotonic() + 15
    while True:
        try:
            offsets = admin.list_offsets([topic])
            break
        except KafkaUnavailable:
            assert time.monotonic() < deadline, "the admin did not reconnect"
            time.sleep(0.2)
    assert offsets == {topic: {0: (0, 1)}}
    assert never_connected.topic_exists(topic)
    never_connected.close()
    assert outage_producer.send_and_wait(KafkaRecord(topic, b"k", b"after", [])).offset == 1
    outage_producer.close()


def test_offsets_of_known_partitions_come_from_one_pipelined_round_trip(
    admin: TopicAdmin, producer: RecordProducer, topic_prefix: str, mocker: MockerFixture
) -> None:
    purged, empty = f"{topic_prefix}purged", f"{topic_prefix}empty"
    admin.create_topics([TopicSpec(purged, 1), TopicSpec(empty, 3)])
    produce(producer, purged, {b"k": 10})
    admin.delete_records({purged: {0: 6}})
    admin.list_offsets([purged, empty])  # the consumer learns the partitions' leaders
    pipeline = mocker.spy(PipelinedOffsets, "ranges")

    offsets = admin.list_offsets([purged, empty])

    assert offsets == {purged: {0: (6, 10)}, empty: {0: (0, 0), 1: (0, 0), 2: (0, 0)}}
    assert pipeline.spy_return == offsets  # not a fallback to kafka-python's own calls
