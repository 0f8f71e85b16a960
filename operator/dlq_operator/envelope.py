"""The DLQ message format: the envelope, its headers, and the records built from it.

Other services already write dead letters, in the format of the original TypeScript
``DlqService``: the value is ``JSON.stringify(dlqMessage)`` and the record carries the
headers ``error-code``, ``original-topic`` and ``retry-count``. A retry republishes
``JSON.stringify(event)`` to the original topic with ``x-retry-count`` and
``x-original-offset``. Those names and that encoding are kept exactly; the headers this
project adds all start with ``x-`` and never replace one of them.

The stable id (``x-dlq-id``) names a *dead letter*: ``<dlq-topic>/<partition>/<offset>``
of the DLQ record. Every re-send of that record (a worker that crashed between produce
and commit, a replay) carries the same id, so consumers can de-duplicate on it. The
original topic/partition/offset would not do: the envelope's writer sets them, and a
record that fails again after a retry comes back with the offset of the republished
copy, so they identify an attempt, not the dead letter. A parked record keeps the id of
the dead letter it was (the header travels with it), so replays from the parked topic
share it too.

Encoding rules (those of ``JSON.stringify``, which :mod:`dlq_operator.jsjson` writes):
camelCase keys in the interface's order, optional fields that are ``None`` left out
(JavaScript drops ``undefined``), compact separators, non-ASCII written as UTF-8, numbers
as JavaScript prints them. ``None`` inside ``event`` and ``metadata`` is JSON ``null``, as
in JavaScript. Integers are written exactly, where JavaScript would round beyond 2**53.
"""

from __future__ import annotations

import reprlib
import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from dlq_operator import dlq_topic_for
from dlq_operator.errors import EnvelopeError
from dlq_operator.jsjson import encode_utf8, stringify
from dlq_operator.jsjson import parse as parse_json

# Headers on a DLQ record, as the original service writes them.
ERROR_CODE_HEADER = "error-code"
ORIGINAL_TOPIC_HEADER = "original-topic"
RETRY_COUNT_HEADER = "retry-count"
DEFAULT_ERROR_CODE = "PROCESSING_FAILED"
# Headers on a record republished to its original topic.
REPUBLISH_RETRY_COUNT_HEADER = "x-retry-count"
ORIGINAL_OFFSET_HEADER = "x-original-offset"
# Headers this project adds.
DLQ_ID_HEADER = "x-dlq-id"
PARKED_REASON_HEADER = "x-parked-reason"
PARKED_AT_HEADER = "x-parked-at"
PARKED_DETAIL_HEADER = "x-parked-detail"
REPROCESSED_BY_HEADER = "x-reprocessed-by"

# Far above Kafka's default 1 MiB record limit, low enough that one record cannot take
# the worker's whole memory once parsed into Python objects.
DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024
# A header, not a log: long details would make the parked record itself too large.
MAX_DETAIL_CHARS = 1000

Headers = Sequence[tuple[str, bytes | None]]


class ParkedReason(StrEnum):
    """Why a dead letter was parked instead of retried; the ``x-parked-reason`` header."""

    MALFORMED_ENVELOPE = "MalformedEnvelope"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    NON_RETRYABLE = "NonRetryable"
    UNKNOWN_TOPIC = "UnknownTopic"
    TOO_LARGE = "TooLarge"
    FOREIGN_TOPIC = "ForeignTopic"  # originalTopic is not the DLQ's source topic


class KafkaRecord(NamedTuple):
    """A record to produce: plain values, so the kafka adapter needs nothing from here."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


_METADATA_STRINGS = ("tenantId", "correlationId", "userId")
# Kafka's own rule for topic names: a name outside it cannot be republished to.
_KAFKA_TOPIC = r"^[a-zA-Z0-9._-]{1,249}$"
_INT32_MAX = 2**31 - 1


class DlqEnvelope(BaseModel):
    """One dead letter: the failed event and the context of its failure.

    Built and read by the camelCase wire names (``DlqEnvelope(originalTopic=...)``),
    read in Python by field name (``envelope.original_topic``). Types are strict where
    the wire would be ambiguous: ``originalPartition`` and ``retryCount`` must be JSON
    integers, not ``"0"`` or ``0.5``. ``originalOffset`` is a string on the wire; a
    non-negative integer is accepted too and kept as its decimal string, because
    producers written in other languages write offsets as numbers and the value means
    the same. ``originalTopic`` must be a legal Kafka topic name and ``retryCount`` fit
    Kafka's 32-bit counts. Timestamps are strings and not checked further: some writers put epoch
    milliseconds there, and nothing is lost by keeping what they wrote. ``metadata`` keeps
    its keys in the writer's order. Unknown fields are kept and written back after the
    known ones.
    """

    model_config = ConfigDict(alias_generator=to_camel, extra="allow", strict=True, frozen=True)

    # Field order is the wire order.
    original_topic: str = Field(pattern=_KAFKA_TOPIC)
    original_partition: int
    original_offset: str
    original_key: str | None = None
    original_timestamp: str
    event: Any
    error: str
    stack: str | None = None
    error_code: str | None = None
    consumer_group: str
    consumer_id: str | None = None
    processing_timestamp: str
    retry_count: int = Field(ge=0, le=_INT32_MAX)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("original_offset", mode="before")
    @classmethod
    def _offset_as_string(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _known_metadata_are_strings(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in _METADATA_STRINGS:
            if value.get(name) is not None and not isinstance(value[name], str):
                raise ValueError(f"{name} must be a string")
        return value

    def wire_dict(self) -> dict[str, Any]:
        """The envelope as ``JSON.stringify`` sees it: wire names and order, no None optionals."""
        wire = {
            field.alias or name: value
            for name, field in type(self).model_fields.items()
            if (value := getattr(self, name)) is not None or name == "event"
        }
        wire.update(self.model_extra or {})
        return wire


def decode_record(value: bytes | None, *, max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> DlqEnvelope:
    """Read a DLQ record's value as an envelope.

    Raises :class:`EnvelopeError` with reason ``MalformedEnvelope`` and a detail saying
    what is wrong for every value that is not an envelope, and ``TooLarge`` for a value
    beyond ``max_bytes`` (parsing it could take more memory than the worker has).
    """
    if value is None:
        raise _malformed("value is null (a tombstone)")
    if not value:
        raise _malformed("value is empty")
    if len(value) > max_bytes:
        raise EnvelopeError(
            ParkedReason.TOO_LARGE, f"value is {len(value)} bytes, more than {max_bytes} allowed"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"value is not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = parse_json(text)
    except (ValueError, RecursionError) as exc:
        raise _malformed(f"value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _malformed(f"value is a JSON {_json_type(data)}, not an object")
    try:
        return DlqEnvelope.model_validate(data)
    except ValidationError as exc:
        raise _malformed(_describe(exc)) from None


def encode_envelope(envelope: DlqEnvelope) -> bytes:
    """The value of a DLQ record: ``JSON.stringify(dlqMessage)`` as UTF-8."""
    return stringify(envelope.wire_dict())


def encode_dlq_record(envelope: DlqEnvelope) -> KafkaRecord:
    """The DLQ record for ``envelope``, exactly as the original ``DlqService.send`` writes it."""
    error_code = envelope.error_code or DEFAULT_ERROR_CODE
    return KafkaRecord(
        topic=dlq_topic_for(envelope.original_topic),
        key=_key(envelope),
        value=encode_envelope(envelope),
        headers=[
            (ERROR_CODE_HEADER, encode_utf8(error_code)),
            (ORIGINAL_TOPIC_HEADER, envelope.original_topic.encode()),
            (RETRY_COUNT_HEADER, str(envelope.retry_count).encode()),
        ],
    )


def dlq_id_of(topic: str, partition: int, offset: int, headers: Headers = ()) -> str:
    """The stable id of a dead letter read at ``topic/partition/offset``.

    A record that already carries ``x-dlq-id`` (a parked one) keeps it; any other is
    named by its own coordinates.
    """
    carried = header_value(headers, DLQ_ID_HEADER)
    return carried if carried else f"{topic}/{partition}/{offset}"


def republish_record(
    envelope: DlqEnvelope,
    dlq_id: str,
    retry_count: int,
    extra_headers: Iterable[tuple[str, bytes]] = (),
) -> KafkaRecord:
    """The record that retries ``envelope`` on its original topic.

    ``retry_count`` is the number the record carries in ``x-retry-count``: the worker
    sends ``envelope.retry_count + 1``, as the original retry service did.
    """
    return _republish(
        envelope.original_topic,
        _key(envelope),
        stringify(envelope.event),
        envelope.original_offset,
        retry_count,
        dlq_id,
        extra_headers,
    )


# retry count, then lengths of topic, key (-1 for none) and original offset.
_PACKED_HEAD = struct.Struct(">IIiI")


def pack_republish(envelope: DlqEnvelope, retry_count: int) -> bytes:
    """What :func:`republish_record` needs, in one small ``bytes`` for a record that waits.

    A million waiting retries must fit in a worker's memory: one flat bytes object costs
    little more than its content, a model or a tuple of headers several times that.
    """
    topic = envelope.original_topic.encode()
    key = _key(envelope)
    offset = encode_utf8(envelope.original_offset)
    head = _PACKED_HEAD.pack(retry_count, len(topic), -1 if key is None else len(key), len(offset))
    return b"".join((head, topic, key or b"", offset, stringify(envelope.event)))


def unpack_republish(
    packed: bytes, dlq_id: str, extra_headers: Iterable[tuple[str, bytes]] = ()
) -> KafkaRecord:
    """The republish record from :func:`pack_republish`'s bytes."""
    retry_count, topic_len, key_len, offset_len = _PACKED_HEAD.unpack_from(packed)
    pos = _PACKED_HEAD.size
    topic = packed[pos : pos + topic_len].decode()
    pos += topic_len
    key = None if key_len < 0 else packed[pos : pos + key_len]
    pos += max(key_len, 0)
    offset = packed[pos : pos + offset_len].decode()
    value = packed[pos + offset_len :]
    return _republish(topic, key, value, offset, retry_count, dlq_id, extra_headers)


def parked_headers(
    original_headers: Headers,
    reason: ParkedReason,
    detail: str,
    now: float,
    dlq_id: str | None = None,
) -> list[tuple[str, bytes]]:
    """Headers of a parked record: the DLQ record's own, then why and when it was parked.

    ``now`` is epoch seconds. ``dlq_id`` is added unless the record already carries one.
    A null header value is kept as an empty one: that is how the producer writes it.
    """
    headers = [(name, value or b"") for name, value in original_headers]
    headers += [
        (PARKED_REASON_HEADER, str(reason).encode()),
        (PARKED_AT_HEADER, format_timestamp(now).encode()),
    ]
    if detail:
        headers.append((PARKED_DETAIL_HEADER, encode_utf8(_truncate(detail))))
    if dlq_id and header_value(original_headers, DLQ_ID_HEADER) is None:
        headers.append((DLQ_ID_HEADER, dlq_id.encode()))
    return headers


def header_value(headers: Headers, name: str) -> str | None:
    """The last value of header ``name`` as text (Kafka allows repeats; the last is newest)."""
    for key, value in reversed(headers):
        if key == name:
            return None if value is None else value.decode("utf-8", errors="replace")
    return None


def retry_count_from_headers(headers: Headers) -> int:
    """How many retries an incoming record has had: its ``x-retry-count``, else 0.

    Tolerant on purpose: a consumer that failed must still reach the DLQ, so a missing,
    negative or garbled header counts as a first attempt.
    """
    text = header_value(headers, REPUBLISH_RETRY_COUNT_HEADER)
    try:
        return max(int(text), 0) if text is not None else 0
    except ValueError:
        return 0


def effective_error_code(envelope: DlqEnvelope, headers: Headers) -> str:
    """The error code a record is judged by.

    The envelope's ``errorCode`` wins: it is the writer's own account and travels with the
    value into the parked topic and replays. The ``error-code`` header is a copy made for
    routing; it is used when the envelope has none, and the default applies last.
    """
    return envelope.error_code or header_value(headers, ERROR_CODE_HEADER) or DEFAULT_ERROR_CODE


def format_timestamp(epoch_seconds: float) -> str:
    """ISO-8601 in UTC with milliseconds, as JavaScript's ``Date.toISOString()``."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(text: str) -> float | None:
    """Epoch seconds of an ISO-8601 timestamp (no zone means UTC), ``None`` if it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _republish(
    topic: str,
    key: bytes | None,
    value: bytes,
    original_offset: str,
    retry_count: int,
    dlq_id: str,
    extra_headers: Iterable[tuple[str, bytes]],
) -> KafkaRecord:
    headers = [
        (REPUBLISH_RETRY_COUNT_HEADER, str(retry_count).encode()),
        (ORIGINAL_OFFSET_HEADER, encode_utf8(original_offset)),
        (DLQ_ID_HEADER, dlq_id.encode()),
        *extra_headers,
    ]
    return KafkaRecord(topic=topic, key=key, value=value, headers=headers)


def _key(envelope: DlqEnvelope) -> bytes | None:
    """The record key: ``originalKey``, none when it has none (kafkajs sends ``undefined``)."""
    return None if envelope.original_key is None else encode_utf8(envelope.original_key)


def _json_type(data: object) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, int | float):
        return "number"
    return "string" if isinstance(data, str) else "array"


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40


def _describe(exc: ValidationError) -> str:
    """One line per invalid field, e.g. ``originalTopic: Field required``."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "value"
        problem = f"{where}: {error['msg']}"
        if error["type"] != "missing":
            problem += f" (got {_short.repr(error['input'])})"
        problems.append(problem)
    return "; ".join(problems)


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _malformed(detail: str) -> EnvelopeError:
    return EnvelopeError(ParkedReason.MALFORMED_ENVELOPE, _truncate(detail))
