"""Which dead letters a replay picks: planned offset ranges and the per-record verdict."""

from datetime import UTC, datetime, timedelta

import pytest

from dlq_operator.api import MessageSelector
from dlq_operator.envelope import DlqEnvelope, decode_record, encode_dlq_record
from dlq_operator.errors import EnvelopeError
from dlq_operator.kafka import ConsumedRecord
from dlq_operator.reprocess.selection import (
    OffsetRange,
    RecordFilter,
    SkipReason,
    error_code_of,
    key_of,
    plan_ranges,
    quota_left,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
RETAINED = {0: (10, 30), 1: (0, 5), 2: (7, 7)}  # partition 2 is empty


def select(**fields: object) -> MessageSelector:
    return MessageSelector.model_validate(fields)


def envelope(error_code: str | None = None, key: str | None = "k1") -> DlqEnvelope:
    return DlqEnvelope(
        originalTopic="orders",
        originalPartition=0,
        originalOffset="5",
        originalKey=key,
        originalTimestamp="2026-03-01T11:59:59.000Z",
        event={"id": 1},
        error="boom",
        errorCode=error_code,
        consumerGroup="orders-service",
        processingTimestamp="2026-03-01T12:00:00.000Z",
        retryCount=1,
    )


def dead_letter(
    env: DlqEnvelope | None = None,
    *,
    timestamp_ms: int = T0_MS,
    value: bytes | None = None,
    key: bytes | None = b"k1",
    headers: list[tuple[str, bytes | None]] | None = None,
) -> tuple[ConsumedRecord, DlqEnvelope | EnvelopeError]:
    """A DLQ record as the publisher writes it (or with a raw value), and its decoding."""
    if env is not None:
        written = encode_dlq_record(env)
        value, key, base = written.value, written.key, list(written.headers)
    else:
        base = []
    record = ConsumedRecord("orders.dlq", 0, 42, timestamp_ms, key, value, base + (headers or []))
    try:
        decoded: DlqEnvelope | EnvelopeError = decode_record(value)
    except EnvelopeError as exc:
        decoded = exc
    return record, decoded


def verdict(selector: MessageSelector, target_topic: str | None = None, **record: object):
    return RecordFilter(selector, target_topic).skip_reason(*dead_letter(**record))


# --- plan_ranges --------------------------------------------------------------------------------


def test_an_empty_selector_plans_every_retained_record_and_omits_empty_partitions() -> None:
    assert plan_ranges(select(), RETAINED) == {0: OffsetRange(10, 30), 1: OffsetRange(0, 5)}


def test_the_partition_filter_keeps_only_those_the_topic_has() -> None:
    assert plan_ranges(select(partitions=[1, 9]), RETAINED) == {1: OffsetRange(0, 5)}


def test_to_offset_is_inclusive_and_offsets_are_clamped_to_the_retained_range() -> None:
    plan = plan_ranges(select(fromOffset=3, toOffset=12), RETAINED)

    assert plan == {0: OffsetRange(10, 13), 1: OffsetRange(3, 5)}


def test_a_single_offset_can_be_selected() -> None:
    assert plan_ranges(select(fromOffset=20, toOffset=20), RETAINED) == {0: OffsetRange(20, 21)}


def test_offsets_beyond_the_retained_range_plan_nothing() -> None:
    assert plan_ranges(select(fromOffset=30), RETAINED) == {}


def test_since_starts_and_until_ends_at_the_offsets_of_those_times() -> None:
    selector = select(since=T0, until=T0 + timedelta(hours=1))
    since = {0: 15, 1: 2, 2: None}
    until = {0: 25, 1: None, 2: None}  # None: nothing at or after that time

    plan = plan_ranges(selector, RETAINED, since, until)

    assert plan == {0: OffsetRange(15, 25), 1: OffsetRange(2, 5)}


def test_no_record_since_the_time_selects_nothing_in_that_partition() -> None:
    plan = plan_ranges(select(since=T0), RETAINED, since_offsets={0: None, 1: 3, 2: None})

    assert plan == {1: OffsetRange(3, 5)}


def test_time_and_offset_bounds_intersect() -> None:
    plan = plan_ranges(
        select(fromOffset=12, toOffset=27, since=T0),
        RETAINED,
        since_offsets={0: 20, 1: 0, 2: None},
    )

    assert plan == {0: OffsetRange(20, 28)}  # partition 1 ends below fromOffset


def test_a_time_bound_needs_its_offsets() -> None:
    with pytest.raises(ValueError, match="since"):
        plan_ranges(select(since=T0), RETAINED)
    with pytest.raises(ValueError, match="partition 1"):
        plan_ranges(select(until=T0), RETAINED, until_offsets={0: 12})


# --- RecordFilter -------------------------------------------------------------------------------


def test_an_empty_selector_picks_every_envelope() -> None:
    assert verdict(select(), env=envelope()) is None


def test_since_is_inclusive_and_until_exclusive_to_the_millisecond() -> None:
    selector = select(since=T0, until=T0 + timedelta(seconds=1))

    assert verdict(selector, env=envelope(), timestamp_ms=T0_MS) is None
    assert verdict(selector, env=envelope(), timestamp_ms=T0_MS + 999) is None
    assert (
        verdict(selector, env=envelope(), timestamp_ms=T0_MS - 1) == SkipReason.OUTSIDE_TIME_RANGE
    )
    assert verdict(selector, env=envelope(), timestamp_ms=T0_MS + 1000) == (
        SkipReason.OUTSIDE_TIME_RANGE
    )


def test_a_since_between_milliseconds_is_not_rounded_down() -> None:
    selector = select(since=T0 + timedelta(microseconds=500))

    assert verdict(selector, env=envelope(), timestamp_ms=T0_MS) == SkipReason.OUTSIDE_TIME_RANGE
    assert verdict(selector, env=envelope(), timestamp_ms=T0_MS + 1) is None


def test_error_codes_match_the_envelope_then_the_header_then_the_default() -> None:
    selector = select(errorCodes=["TIMEOUT", "PROCESSING_FAILED"])
    # The publisher writes the same code in the header; a different header does not win.
    timeout_in_envelope = [("error-code", b"OTHER")]
    plain = envelope()  # no errorCode: the header is PROCESSING_FAILED

    assert verdict(selector, env=envelope("TIMEOUT"), headers=timeout_in_envelope) is None
    assert verdict(selector, env=envelope("VALIDATION")) == SkipReason.ERROR_CODE_NOT_SELECTED
    assert verdict(selector, env=plain) is None
    assert verdict(select(errorCodes=["TIMEOUT"]), env=plain) == SkipReason.ERROR_CODE_NOT_SELECTED


def test_the_error_code_of_a_record_that_is_not_an_envelope_comes_from_its_header() -> None:
    record, _ = dead_letter(value=b"not json", headers=[("error-code", b"TIMEOUT")])
    bare, _ = dead_letter(value=b"not json")

    assert error_code_of(record, None) == "TIMEOUT"
    assert error_code_of(bare, None) == "PROCESSING_FAILED"


def test_keys_match_the_original_key_else_the_record_key() -> None:
    selector = select(keys=["k1"])

    assert verdict(selector, env=envelope(key="k1")) is None
    assert verdict(selector, env=envelope(key="k2")) == SkipReason.KEY_NOT_SELECTED
    # No originalKey: the record key counts (here set by hand, the publisher writes none).
    keyless = envelope(key=None)
    record, _ = dead_letter(keyless)
    assert key_of(record._replace(key=b"k1"), keyless) == "k1"
    assert key_of(record, keyless) is None


def test_headers_must_all_be_present_with_exactly_that_value_the_last_one_counting() -> None:
    selector = select(headers={"tenant": "t1", "region": "eu"})
    both = [("tenant", b"t1"), ("region", b"eu")]
    overridden = [("tenant", b"t1"), ("region", b"eu"), ("region", b"us")]

    assert verdict(selector, env=envelope(), headers=both) is None
    assert verdict(selector, env=envelope(), headers=both[:1]) == SkipReason.HEADERS_NOT_SELECTED
    assert verdict(selector, env=envelope(), headers=overridden) == (
        SkipReason.HEADERS_NOT_SELECTED
    )


def test_a_record_that_is_not_an_envelope_needs_a_target_topic() -> None:
    assert verdict(select(), value=b"{oops") == SkipReason.MALFORMED_ENVELOPE
    assert verdict(select(), target_topic="orders-replay", value=b"{oops") is None


def test_a_record_too_large_to_decode_is_skipped_as_such_without_a_target() -> None:
    record, _ = dead_letter(value=b"{}")
    too_large = EnvelopeError("TooLarge", "value is 9 MiB")

    assert RecordFilter(select(), None).skip_reason(record, too_large) == SkipReason.TOO_LARGE
    assert RecordFilter(select(), "elsewhere").skip_reason(record, too_large) is None


def test_tombstones_are_never_replayed() -> None:
    assert verdict(select(), target_topic="orders-replay", value=None) == SkipReason.TOMBSTONE


def test_filters_are_judged_before_whether_a_record_can_be_replayed() -> None:
    assert verdict(select(keys=["other"]), value=b"{oops") == SkipReason.KEY_NOT_SELECTED


# --- quota --------------------------------------------------------------------------------------


def test_quota_left_counts_down_max_messages() -> None:
    assert quota_left(select(), 10**9) is None
    assert quota_left(select(maxMessages=5), 3) == 2
    assert quota_left(select(maxMessages=5), 7) == 0
