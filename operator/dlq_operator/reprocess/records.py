"""The records a replay reads and the records it produces.

A replay reads :class:`~dlq_operator.kafka.ConsumedRecord` values from a dead-letter topic
(or its parked topic) and produces :class:`~dlq_operator.envelope.KafkaRecord` values. A dead letter
that is an envelope is replayed as the retry worker would republish it, the event alone
on its original topic (or the request's target topic), with:

- ``x-retry-count``: ``0`` when the request resets retry counts, else the envelope's
  ``retryCount``. A replay is not a retry, so it does not add one (the worker sends
  ``retryCount + 1``);
- ``x-original-offset``: the envelope's ``originalOffset``;
- ``x-dlq-id``: the dead letter's stable id, the same on every re-send of it, so
  consumers can drop duplicates (a batch re-sent after a failure or a restart);
- ``x-reprocessed-by``: who asked, ``<namespace>/<name>`` of a ReprocessRequest or
  ``dlq-admin/<user>`` for the admin CLI.

A record that is not an envelope has no original topic to go back to. With a target
topic it is replayed as it is: the same key, value and headers, plus ``x-reprocessed-by``
and ``x-dlq-id`` when it has none. Without one it is not replayed at all (see
:mod:`.selection`).
"""

from __future__ import annotations

from dlq_operator.envelope import (
    DLQ_ID_HEADER,
    REPROCESSED_BY_HEADER,
    DlqEnvelope,
    KafkaRecord,
    dlq_id_of,
    header_value,
    republish_record,
)
from dlq_operator.kafka import ConsumedRecord


def reprocessed_by_request(namespace: str, name: str) -> str:
    """The ``x-reprocessed-by`` value of a replay run for a ReprocessRequest."""
    return f"{namespace}/{name}"


def reprocessed_by_admin(user: str) -> str:
    """The ``x-reprocessed-by`` value of a replay run from the admin CLI by ``user``."""
    return f"dlq-admin/{user}"


def build_replay_record(
    envelope: DlqEnvelope | None,
    source: ConsumedRecord,
    reprocessed_by: str,
    target_topic: str | None,
    reset_retry_count: bool,
) -> KafkaRecord:
    """The record that replays the dead letter ``source``.

    ``envelope`` is ``source``'s decoded value, ``None`` when it is not an envelope; such
    a record needs ``target_topic`` (a :class:`ValueError` otherwise: the selection never
    lets one through without it) and a value (tombstones are never replayed).
    """
    replay_headers = [(REPROCESSED_BY_HEADER, reprocessed_by.encode())]
    dlq_id = dlq_id_of(source.topic, source.partition, source.offset, source.headers)
    if envelope is not None:
        retry_count = 0 if reset_retry_count else envelope.retry_count
        record = republish_record(envelope, dlq_id, retry_count, replay_headers)
        return record._replace(topic=target_topic) if target_topic else record
    if not target_topic or source.value is None:
        raise ValueError(
            f"{dlq_id} is not an envelope: it can only be replayed as it is, to a target topic"
        )
    # A null header value is written back as an empty one, as the producer sends it.
    headers = [(name, value or b"") for name, value in source.headers]
    if header_value(source.headers, DLQ_ID_HEADER) is None:
        headers.append((DLQ_ID_HEADER, dlq_id.encode()))
    headers += replay_headers
    return KafkaRecord(topic=target_topic, key=source.key, value=source.value, headers=headers)
