"""``list`` and ``show``: dead letters as people read them, valid envelopes or not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.json import JSON
from rich.panel import Panel
from rich.table import Column
from rich.text import Text

from dlq_operator.cli.options import (
    DEFAULT_BOOTSTRAP_SERVERS,
    BootstrapServers,
    Force,
    Output,
    Partitions,
    Topic,
    kafka_settings,
    position_parser,
)
from dlq_operator.cli.output import OutputFormat, emit, fields_table, number, table, truncate
from dlq_operator.cli.parsing import Position
from dlq_operator.cli.topics import (
    locate,
    require_dead_letter_topic,
    require_partitions,
    retained_offsets,
)
from dlq_operator.envelope import (
    ORIGINAL_TOPIC_HEADER,
    DlqEnvelope,
    decode_record,
    dlq_id_of,
    format_timestamp,
    header_value,
)
from dlq_operator.errors import EnvelopeError, OffsetOutOfRange
from dlq_operator.kafka import ConsumedRecord, RecordReader, TopicAdmin
from dlq_operator.reprocess.selection import error_code_of, key_of
from dlq_operator.settings import KafkaSettings

CLIENT_ID = "dlq-admin"
ERROR_WIDTH = 50


def list_command(
    topic: Topic,
    limit: Annotated[
        int, typer.Option("--limit", "-l", min=1, metavar="N", help="Show at most N.")
    ] = 10,
    partitions: Partitions = None,
    from_offset: Annotated[
        int | None,
        typer.Option("--from-offset", min=0, metavar="OFFSET", help="Start at this offset."),
    ] = None,
    force: Force = False,
    output: Output = OutputFormat.TABLE,
    bootstrap_servers: BootstrapServers = DEFAULT_BOOTSTRAP_SERVERS,
) -> None:
    """List dead letters: the first N by partition and offset.

    Reads up to the current end of each partition and returns; it never waits for new
    records. Records that are not valid envelopes are listed too, marked malformed.
    """
    require_dead_letter_topic(topic, force)
    records = read_records(
        kafka_settings(bootstrap_servers),
        topic,
        limit=limit,
        partitions=partitions,
        from_offset=from_offset or 0,
    )
    summaries = [summarize(record) for record in records]
    emit(summaries, output, lambda: _records_table(topic, summaries))


def show_command(
    topic: Topic,
    position: Annotated[
        Position,
        typer.Argument(
            parser=position_parser,
            metavar="PARTITION:OFFSET",
            help="The record; a bare OFFSET when only one partition holds it.",
            show_default=False,
        ),
    ],
    force: Force = False,
    output: Output = OutputFormat.TABLE,
    bootstrap_servers: BootstrapServers = DEFAULT_BOOTSTRAP_SERVERS,
) -> None:
    """Show one dead letter in full: its envelope and headers."""
    require_dead_letter_topic(topic, force)
    settings = kafka_settings(bootstrap_servers)
    with TopicAdmin(settings, client_id=CLIENT_ID) as admin:
        partition, offset = locate(topic, retained_offsets(admin, topic), position)
    with RecordReader(settings, client_id=CLIENT_ID) as reader:
        record = reader.read_one(topic, partition, offset)
    if record is None:
        raise OffsetOutOfRange(
            f"{topic} has no record at {partition}:{offset} (compacted away or a "
            "transaction marker)"
        )
    detail = describe(record)
    emit(detail, output, lambda: _detail_view(detail))


def read_records(
    settings: KafkaSettings,
    topic: str,
    *,
    limit: int,
    partitions: Sequence[int] | None,
    from_offset: int,
) -> list[ConsumedRecord]:
    """Up to ``limit`` records from ``from_offset`` on, partition by partition in order."""
    with TopicAdmin(settings, client_id=CLIENT_ID) as admin:
        ranges = retained_offsets(admin, topic)
    chosen = sorted(set(partitions)) if partitions else sorted(ranges)
    require_partitions(topic, ranges, chosen)
    found: list[ConsumedRecord] = []
    with RecordReader(settings, client_id=CLIENT_ID) as reader:
        for partition in chosen:
            low, high = ranges[partition]
            left = limit - len(found)
            if left == 0:
                break
            span = {partition: (max(low, from_offset), high)}
            found += reader.read_range(topic, span, max_records=left)
    return found


def summarize(record: ConsumedRecord) -> dict[str, Any]:
    """The facts ``list`` shows of a record; ``malformed`` says why it is not an envelope."""
    envelope, problem = _decoded(record)
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": _time_of(record),
        "key": key_of(record, envelope),
        "originalTopic": envelope.original_topic
        if envelope
        else header_value(record.headers, ORIGINAL_TOPIC_HEADER),
        "errorCode": error_code_of(record, envelope),
        "retryCount": envelope.retry_count if envelope else None,
        "error": envelope.error if envelope else None,
        "processingTimestamp": envelope.processing_timestamp if envelope else None,
        "dlqId": dlq_id_of(record.topic, record.partition, record.offset, record.headers),
        "malformed": problem,
    }


def describe(record: ConsumedRecord) -> dict[str, Any]:
    """Everything about one record: coordinates, headers, and the envelope or raw value."""
    envelope, problem = _decoded(record)
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": _time_of(record),
        "key": _text(record.key),
        "dlqId": dlq_id_of(record.topic, record.partition, record.offset, record.headers),
        "headers": [{"name": name, "value": _text(value)} for name, value in record.headers],
        "envelope": envelope.wire_dict() if envelope else None,
        "malformed": problem,
        "value": None if envelope else _text(record.value),
    }


def _decoded(record: ConsumedRecord) -> tuple[DlqEnvelope | None, str | None]:
    try:
        return decode_record(record.value), None
    except EnvelopeError as exc:
        return None, str(exc)


def _time_of(record: ConsumedRecord) -> str:
    return format_timestamp(record.timestamp_ms / 1000)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def _records_table(topic: str, summaries: list[dict[str, Any]]) -> RenderableType:
    if not summaries:
        return Text(f"No records in {topic}.", style="dim")
    rows = []
    for s in summaries:
        error: Any = (
            Text(truncate(f"malformed: {s['malformed']}", ERROR_WIDTH), style="red")
            if s["malformed"]
            else truncate(s["error"], ERROR_WIDTH)
        )
        rows.append(
            (
                s["partition"],
                s["offset"],
                s["originalTopic"],
                s["errorCode"],
                s["retryCount"],
                error,
                s["processingTimestamp"],
            )
        )
    columns = (
        number("P"),
        number("Offset"),
        "Original topic",
        "Error code",
        number("Retries"),
        Column("Error", min_width=20, overflow="fold"),
        "Processed at",
    )
    return table(f"{topic}: {len(summaries)} records", columns, rows)


def _detail_view(detail: dict[str, Any]) -> RenderableType:
    facts = fields_table(
        None,
        {
            "Topic": detail["topic"],
            "Partition": detail["partition"],
            "Offset": detail["offset"],
            "Timestamp": detail["timestamp"],
            "Key": detail["key"],
            "DLQ id": detail["dlqId"],
        },
    )
    headers: RenderableType = (
        table(
            "Headers",
            ("Name", Column("Value", overflow="fold")),
            ((h["name"], h["value"]) for h in detail["headers"]),
        )
        if detail["headers"]
        else Text("No headers.", style="dim")
    )
    if detail["envelope"] is not None:
        body: RenderableType = Panel(
            JSON.from_data(detail["envelope"]), title="Envelope", expand=False
        )
    else:
        body = Panel(
            Group(
                Text(detail["malformed"], style="red"),
                Text(detail["value"] if detail["value"] is not None else "(null: a tombstone)"),
            ),
            title="Value (not an envelope)",
            border_style="red",
            expand=False,
        )
    return Group(facts, Text(), headers, body)
