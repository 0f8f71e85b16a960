"""The records a replay produces: event, key and headers of each dead letter it picks."""

import pytest

from dlq_operator.envelope import DlqEnvelope, Headers, KafkaRecord, encode_dlq_record
from dlq_operator.kafka import ConsumedRecord
from dlq_operator.reprocess.records import (
    build_replay_record,
    reprocessed_by_admin,
    reprocessed_by_request,
)

BY = reprocessed_by_request("shop", "replay-1")


def envelope(retry_count: int = 2) -> DlqEnvelope:
    return DlqEnvelope(
        originalTopic="orders",
        originalPartition=3,
        originalOffset="981",
        originalKey="order-7",
        originalTimestamp="2026-03-01T11:59:59.000Z",
        event={"orderId": 7, "total": 12.0},
        error="boom",
        errorCode="TIMEOUT",
        consumerGroup="orders-service",
        processingTimestamp="2026-03-01T12:00:00.000Z",
        retryCount=retry_count,
    )


def source_of(env: DlqEnvelope, headers: Headers = ()) -> ConsumedRecord:
    written = encode_dlq_record(env)
    return ConsumedRecord(
        "orders.dlq", 1, 42, 0, written.key, written.value, [*written.headers, *headers]
    )


def test_the_identities_of_who_replays() -> None:
    assert BY == "shop/replay-1"
    assert reprocessed_by_admin("alice") == "dlq-admin/alice"


def test_an_envelope_is_replayed_as_its_event_to_its_original_topic() -> None:
    record = build_replay_record(envelope(), source_of(envelope()), BY, None, True)

    assert record == KafkaRecord(
        topic="orders",
        key=b"order-7",
        value=b'{"orderId":7,"total":12}',
        headers=[
            ("x-retry-count", b"0"),
            ("x-original-offset", b"981"),
            ("x-dlq-id", b"orders.dlq/1/42"),
            ("x-reprocessed-by", b"shop/replay-1"),
        ],
    )


def test_without_reset_the_retry_count_is_the_envelopes_not_one_more() -> None:
    record = build_replay_record(envelope(2), source_of(envelope(2)), BY, None, False)

    assert ("x-retry-count", b"2") in record.headers


def test_a_target_topic_overrides_the_original_one() -> None:
    record = build_replay_record(envelope(), source_of(envelope()), BY, "orders-replay", True)

    assert record.topic == "orders-replay"


def test_a_parked_dead_letter_keeps_the_id_it_carries() -> None:
    parked = source_of(envelope(), [("x-dlq-id", b"orders.dlq/0/5")])._replace(
        topic="orders.dlq.parked"
    )

    record = build_replay_record(envelope(), parked, BY, None, True)

    assert ("x-dlq-id", b"orders.dlq/0/5") in record.headers


def test_a_record_that_is_not_an_envelope_goes_to_the_target_unchanged() -> None:
    raw = ConsumedRecord(
        "orders.dlq", 0, 9, 0, b"k", b"\xff garbage", [("error-code", b"X"), ("trace", None)]
    )

    record = build_replay_record(None, raw, BY, "orders-replay", True)

    assert record == KafkaRecord(
        topic="orders-replay",
        key=b"k",
        value=b"\xff garbage",
        headers=[
            ("error-code", b"X"),
            ("trace", b""),
            ("x-dlq-id", b"orders.dlq/0/9"),
            ("x-reprocessed-by", b"shop/replay-1"),
        ],
    )


def test_a_raw_record_that_carries_an_id_is_not_given_a_second() -> None:
    raw = ConsumedRecord(
        "orders.dlq.parked", 0, 9, 0, None, b"x", [("x-dlq-id", b"orders.dlq/2/1")]
    )

    record = build_replay_record(None, raw, BY, "orders-replay", True)

    assert [name for name, _ in record.headers] == ["x-dlq-id", "x-reprocessed-by"]


@pytest.mark.parametrize(
    ("value", "target"), [(b"x", None), (None, "orders-replay")], ids=["no-target", "tombstone"]
)
def test_a_raw_record_without_a_target_or_a_value_cannot_be_replayed(
    value: bytes | None, target: str | None
) -> None:
    raw = ConsumedRecord("orders.dlq", 0, 9, 0, None, value, [])

    with pytest.raises(ValueError, match="is not an envelope"):
        build_replay_record(None, raw, BY, target, True)
