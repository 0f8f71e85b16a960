"""The DLQ wire format: decoding, encoding byte-for-byte as the TypeScript service, headers."""

import json

import pytest

from dlq_operator import dlq_topic_for, parked_topic_for
from dlq_operator.envelope import (
    DEFAULT_MAX_VALUE_BYTES,
    DlqEnvelope,
    ParkedReason,
    decode_record,
    dlq_id_of,
    effective_error_code,
    encode_dlq_record,
    encode_envelope,
    format_timestamp,
    pack_republish,
    parked_headers,
    parse_timestamp,
    republish_record,
    retry_count_from_headers,
    unpack_republish,
)
from dlq_operator.errors import EnvelopeError

# What DlqService.send writes for the seed's own test case: no key, no stack, no errorCode,
# no consumerId (JSON.stringify drops undefined), retryCount 0, metadata {}.
TS_MINIMAL = (
    '{"originalTopic":"orion.events.rfq","originalPartition":0,"originalOffset":"100",'
    '"originalTimestamp":"2024-05-01T10:00:00.000Z","event":{"rfqId":"123"},'
    '"error":"Processing failed","consumerGroup":"rfq-service",'
    '"processingTimestamp":"2024-05-01T10:00:01.250Z","retryCount":0,"metadata":{}}'
)
# Every field set; numbers, escapes and non-ASCII as JSON.stringify writes them.
TS_FULL = (
    '{"originalTopic":"orion.events.trade","originalPartition":2,"originalOffset":"98765",'
    '"originalKey":"trade-42","originalTimestamp":"2024-05-01T09:59:59.999Z",'
    '"event":{"tradeId":"42","price":101.5,"qty":1,"tiny":1e-7,"tags":["a","ü"],'
    '"nested":{"ok":true,"none":null}},"error":"Timeout \\"upstream\\"\\nretry",'
    '"stack":"Error: x\\n    at f (a.js:1:1)","errorCode":"UPSTREAM_TIMEOUT",'
    '"consumerGroup":"trade-service","consumerId":"trade-service-7",'
    '"processingTimestamp":"2024-05-01T10:00:01.250Z","retryCount":2,'
    '"metadata":{"correlationId":"c-1","tenantId":"t-9"}}'
)


def full_envelope() -> DlqEnvelope:
    return DlqEnvelope(
        originalTopic="orion.events.trade",
        originalPartition=2,
        originalOffset="98765",
        originalKey="trade-42",
        originalTimestamp="2024-05-01T09:59:59.999Z",
        event={
            "tradeId": "42",
            "price": 101.5,
            "qty": 1.0,
            "tiny": 1e-7,
            "tags": ["a", "ü"],
            "nested": {"ok": True, "none": None},
        },
        error='Timeout "upstream"\nretry',
        stack="Error: x\n    at f (a.js:1:1)",
        errorCode="UPSTREAM_TIMEOUT",
        consumerGroup="trade-service",
        consumerId="trade-service-7",
        processingTimestamp="2024-05-01T10:00:01.250Z",
        retryCount=2,
        metadata={"correlationId": "c-1", "tenantId": "t-9"},
    )


def wire(**changes: object) -> bytes:
    """The minimal TypeScript record with fields replaced (or removed when given ...)."""
    data = json.loads(TS_MINIMAL)
    for name, value in changes.items():
        if value is ...:
            del data[name]
        else:
            data[name] = value
    return json.dumps(data).encode()


# --- decoding invalid records -------------------------------------------------------

MALFORMED = {
    "none value (tombstone)": (None, "tombstone"),
    "empty value": (b"", "empty"),
    "not UTF-8": (b'{"a":"\xff\xfe"}', "not UTF-8"),
    "not JSON": (b"Processing failed", "not JSON"),
    "truncated JSON": (TS_MINIMAL[:-5].encode(), "not JSON"),
    "NaN is not JSON": (
        wire(retryCount=0).replace(b'"retryCount": 0', b'"retryCount": NaN'),
        "NaN",
    ),
    "JSON array": (b"[1, 2]", "JSON array, not an object"),
    "JSON string": (b'"hello"', "JSON string, not an object"),
    "JSON number": (b"42", "JSON number, not an object"),
    "JSON null": (b"null", "JSON null, not an object"),
    "JSON boolean": (b"true", "JSON boolean, not an object"),
    "empty object": (b"{}", "originalTopic: Field required"),
    "missing originalTopic": (wire(originalTopic=...), "originalTopic: Field required"),
    "empty originalTopic": (wire(originalTopic=""), "originalTopic: String should match pattern"),
    "originalTopic not a Kafka topic": (wire(originalTopic="a b"), "originalTopic: String should"),
    "originalTopic too long": (wire(originalTopic="t" * 250), "originalTopic: String should"),
    "retryCount beyond int32": (wire(retryCount=2**31), "retryCount: Input should be less than"),
    "originalTopic a number": (
        wire(originalTopic=7),
        "originalTopic: Input should be a valid string",
    ),
    "originalPartition as string": (
        wire(originalPartition="0"),
        "originalPartition: Input should be a valid integer (got '0')",
    ),
    "originalPartition fractional": (
        wire(originalPartition=0.5),
        "originalPartition: Input should be a valid integer",
    ),
    "originalPartition boolean": (wire(originalPartition=True), "originalPartition"),
    "originalOffset null": (
        wire(originalOffset=None),
        "originalOffset: Input should be a valid string",
    ),
    "originalOffset negative number": (wire(originalOffset=-1), "originalOffset"),
    "retryCount negative": (
        wire(retryCount=-1),
        "retryCount: Input should be greater than or equal to 0",
    ),
    "retryCount string": (wire(retryCount="1"), "retryCount: Input should be a valid integer"),
    "retryCount missing": (wire(retryCount=...), "retryCount: Field required"),
    "metadata not an object": (
        wire(metadata=["t-1"]),
        "metadata: Input should be a valid dictionary",
    ),
    "metadata tenantId not a string": (wire(metadata={"tenantId": 9}), "tenantId must be a string"),
    "event missing": (wire(event=...), "event: Field required"),
    "error missing": (wire(error=...), "error: Field required"),
    "consumerGroup missing": (wire(consumerGroup=...), "consumerGroup: Field required"),
    "processingTimestamp missing": (
        wire(processingTimestamp=...),
        "processingTimestamp: Field required",
    ),
    "originalKey a number": (wire(originalKey=5), "originalKey: Input should be a valid string"),
    "nested too deeply": (b'{"event":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON"),
}


@pytest.mark.parametrize(("value", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
def test_every_invalid_record_is_a_malformed_envelope_saying_what_is_wrong(
    value: bytes | None, expected: str
) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_record(value)

    assert caught.value.reason == ParkedReason.MALFORMED_ENVELOPE
    assert expected in caught.value.detail
    assert len(caught.value.detail) <= 1000


def test_all_problems_of_a_record_are_listed() -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_record(wire(originalTopic=..., retryCount="x"))

    assert "originalTopic: Field required" in caught.value.detail
    assert "retryCount: Input should be a valid integer" in caught.value.detail


def test_a_value_beyond_the_size_guard_is_too_large_not_malformed() -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_record(wire(event="x" * 2000), max_bytes=1000)

    assert caught.value.reason == ParkedReason.TOO_LARGE
    assert "more than 1000" in caught.value.detail


def test_a_one_mib_record_that_is_otherwise_valid_decodes() -> None:
    value = wire(event={"blob": "x" * (1024 * 1024)})

    envelope = decode_record(value)

    assert len(value) > 1024 * 1024
    assert len(value) < DEFAULT_MAX_VALUE_BYTES
    assert len(envelope.event["blob"]) == 1024 * 1024


# --- decoding valid records ---------------------------------------------------------


def test_the_typescript_record_decodes_to_its_fields() -> None:
    envelope = decode_record(TS_FULL.encode())

    assert envelope.original_topic == "orion.events.trade"
    assert envelope.original_partition == 2
    assert envelope.original_offset == "98765"
    assert envelope.original_key == "trade-42"
    assert envelope.event["tags"] == ["a", "ü"]
    assert envelope.error_code == "UPSTREAM_TIMEOUT"
    assert envelope.consumer_id == "trade-service-7"
    assert envelope.retry_count == 2
    assert envelope.metadata == {"correlationId": "c-1", "tenantId": "t-9"}


def test_absent_optionals_decode_as_none_and_null_counts_as_absent() -> None:
    envelope = decode_record(wire(originalKey=None, stack=None))

    assert envelope.original_key is None
    assert envelope.stack is None
    assert envelope.error_code is None


@pytest.mark.parametrize("event", [None, 0, "text", [], {}, [1, {"a": None}]])
def test_event_can_be_any_json(event: object) -> None:
    assert decode_record(wire(event=event)).event == event


def test_a_numeric_original_offset_is_accepted_as_its_string() -> None:
    assert decode_record(wire(originalOffset=12345)).original_offset == "12345"


def test_metadata_defaults_to_empty_and_keeps_extra_keys() -> None:
    assert decode_record(wire(metadata=...)).metadata == {}
    extra = {"userId": "u-1", "region": "eu", "count": 3}
    assert decode_record(wire(metadata=extra)).metadata == extra


def test_unknown_fields_are_kept_and_written_back_after_the_known_ones() -> None:
    envelope = decode_record(wire(schemaVersion=3, source={"app": "rfq"}))

    assert envelope.model_extra == {"schemaVersion": 3, "source": {"app": "rfq"}}
    assert encode_envelope(envelope).endswith(
        b'"metadata":{},"schemaVersion":3,"source":{"app":"rfq"}}'
    )


def test_snake_case_names_on_the_wire_are_unknown_fields_not_aliases() -> None:
    with pytest.raises(EnvelopeError, match="originalTopic: Field required"):
        decode_record(wire(originalTopic=..., original_topic="orion.events.rfq"))


# --- encoding -----------------------------------------------------------------------


def test_encoding_is_byte_for_byte_what_the_typescript_service_writes() -> None:
    assert encode_envelope(full_envelope()) == TS_FULL.encode()


@pytest.mark.parametrize("written", [TS_MINIMAL, TS_FULL], ids=["minimal", "full"])
def test_typescript_records_round_trip_unchanged(written: str) -> None:
    assert encode_envelope(decode_record(written.encode())) == written.encode()


def test_the_dlq_record_has_the_seed_topic_key_and_headers() -> None:
    record = encode_dlq_record(decode_record(TS_MINIMAL.encode()))

    assert record.topic == "orion.events.rfq.dlq"
    assert record.key is None
    assert record.value == TS_MINIMAL.encode()
    assert record.headers == [
        ("error-code", b"PROCESSING_FAILED"),
        ("original-topic", b"orion.events.rfq"),
        ("retry-count", b"0"),
    ]


def test_the_dlq_record_carries_the_error_code_key_and_retry_count() -> None:
    record = encode_dlq_record(full_envelope())

    assert record.key == b"trade-42"
    assert dict(record.headers) == {
        "error-code": b"UPSTREAM_TIMEOUT",
        "original-topic": b"orion.events.trade",
        "retry-count": b"2",
    }


# --- republish, park, ids -----------------------------------------------------------


def test_republish_sends_the_event_with_the_original_key_and_retry_headers() -> None:
    record = republish_record(full_envelope(), "orion.events.trade.dlq/1/7", 3)

    assert record.topic == "orion.events.trade"
    assert record.key == b"trade-42"
    assert record.value == (
        b'{"tradeId":"42","price":101.5,"qty":1,"tiny":1e-7,"tags":["a","\xc3\xbc"],'
        b'"nested":{"ok":true,"none":null}}'
    )
    assert record.headers == [
        ("x-retry-count", b"3"),
        ("x-original-offset", b"98765"),
        ("x-dlq-id", b"orion.events.trade.dlq/1/7"),
    ]


def test_republish_appends_extra_headers() -> None:
    record = republish_record(
        full_envelope(), "t.dlq/0/1", 1, [("x-reprocessed-by", b"ns/replay-1")]
    )

    assert record.headers[-1] == ("x-reprocessed-by", b"ns/replay-1")


@pytest.mark.parametrize("key", [None, "", "k-ü"])
def test_a_packed_republish_unpacks_to_the_same_record(key: str | None) -> None:
    envelope = full_envelope().model_copy(update={"original_key": key})
    extra = [("x-reprocessed-by", b"me")]

    packed = pack_republish(envelope, 3)

    assert unpack_republish(packed, "d/0/1", extra) == republish_record(envelope, "d/0/1", 3, extra)


def test_the_dlq_id_is_the_records_coordinates_unless_it_carries_one() -> None:
    assert dlq_id_of("orders.dlq", 2, 41) == "orders.dlq/2/41"
    parked = [("error-code", b"E"), ("x-dlq-id", b"orders.dlq/0/7")]
    assert dlq_id_of("orders.dlq.parked", 0, 3, parked) == "orders.dlq/0/7"


def test_parked_headers_keep_the_originals_and_say_why_and_when() -> None:
    original = [("error-code", b"E1"), ("original-topic", b"orders"), ("trace", None)]

    headers = parked_headers(
        original, ParkedReason.RETRIES_EXHAUSTED, "retryCount 3", 1714557600.5, "orders.dlq/0/9"
    )

    assert headers[:3] == [("error-code", b"E1"), ("original-topic", b"orders"), ("trace", b"")]
    assert headers[3:] == [
        ("x-parked-reason", b"RetriesExhausted"),
        ("x-parked-at", b"2024-05-01T10:00:00.500Z"),
        ("x-parked-detail", b"retryCount 3"),
        ("x-dlq-id", b"orders.dlq/0/9"),
    ]


def test_parked_headers_keep_an_existing_id_and_bound_the_detail() -> None:
    original = [("x-dlq-id", b"orders.dlq/0/1")]

    headers = parked_headers(original, ParkedReason.MALFORMED_ENVELOPE, "x" * 5000, 0.0, "o/1/1")

    assert [name for name, _ in headers].count("x-dlq-id") == 1
    assert len(dict(headers)["x-parked-detail"] or b"") == 1000 + 2  # "…" is 3 bytes


def test_parked_headers_leave_out_an_empty_detail() -> None:
    headers = parked_headers([], ParkedReason.UNKNOWN_TOPIC, "", 0.0)

    assert [name for name, _ in headers] == ["x-parked-reason", "x-parked-at"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], 0),
        ([("x-retry-count", b"2")], 2),
        ([("x-retry-count", b" 4 ")], 4),
        ([("x-retry-count", b"1"), ("x-retry-count", b"5")], 5),
        ([("x-retry-count", b"-3")], 0),
        ([("x-retry-count", b"two")], 0),
        ([("x-retry-count", b"\xff")], 0),
        ([("x-retry-count", None)], 0),
        ([("retry-count", b"7")], 0),
    ],
)
def test_retry_count_from_headers_is_tolerant(headers: list, expected: int) -> None:
    assert retry_count_from_headers(headers) == expected


def test_the_envelopes_error_code_wins_over_the_header() -> None:
    envelope = full_envelope()
    no_code = envelope.model_copy(update={"error_code": None})

    assert effective_error_code(envelope, [("error-code", b"OTHER")]) == "UPSTREAM_TIMEOUT"
    assert effective_error_code(no_code, [("error-code", b"OTHER")]) == "OTHER"
    assert effective_error_code(no_code, []) == "PROCESSING_FAILED"


def test_topic_names_follow_the_seed_convention() -> None:
    assert dlq_topic_for("orion.events.rfq") == "orion.events.rfq.dlq"
    assert parked_topic_for("orion.events.rfq.dlq") == "orion.events.rfq.dlq.parked"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00.000Z", 1714557600.0),
        ("2024-05-01T12:00:00+02:00", 1714557600.0),
        ("2024-05-01T10:00:00", 1714557600.0),
        ("1714557600000", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_parse_timestamp(text: str, expected: float | None) -> None:
    assert parse_timestamp(text) == expected


def test_format_timestamp_is_javascripts_to_iso_string() -> None:
    assert format_timestamp(1714557600.1239) == "2024-05-01T10:00:00.123Z"


def test_a_lone_surrogate_in_the_key_is_sent_as_javascript_would() -> None:
    envelope = decode_record(wire(originalKey="k\\ud800").replace(b"\\\\ud800", b"\\ud800"))

    assert envelope.original_key == "k\ud800"
    assert republish_record(envelope, "d/0/1", 1).key == "k\ufffd".encode()
    assert unpack_republish(pack_republish(envelope, 1), "d/0/1").key == "k\ufffd".encode()


def test_whatever_nesting_decodes_can_be_republished() -> None:
    depth = 500
    envelope = decode_record(
        wire(event=0).replace(b'"event": 0', b'"event": ' + b"[" * depth + b"]" * depth)
    )

    assert republish_record(envelope, "d/0/1", 1).value == b"[" * depth + b"]" * depth
