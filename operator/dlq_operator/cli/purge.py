"""``purge``: delete every record of a dead-letter topic, on every partition it has.

Records are deleted with DeleteRecords up to each partition's high watermark as counted
before asking: a record that arrives while someone reads the question is not deleted
unseen. Nothing else moves; the depth monitor reads the new low offsets by itself.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.text import Text

from dlq_operator.cli.options import (
    DEFAULT_BOOTSTRAP_SERVERS,
    FLAG,
    BootstrapServers,
    Output,
    kafka_settings,
)
from dlq_operator.cli.output import OutputFormat, emit, number, table
from dlq_operator.cli.topics import require_dead_letter_topic, retained_offsets
from dlq_operator.errors import NotConfirmed
from dlq_operator.kafka import TopicAdmin

CLIENT_ID = "dlq-admin"


def purge_command(
    topic: Annotated[
        str,
        typer.Argument(
            metavar="TOPIC", help="The dead-letter (or parked) topic.", show_default=False
        ),
    ],
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm", metavar=FLAG, help="Purge without asking (needed without a terminal)."
        ),
    ] = False,
    output: Output = OutputFormat.TABLE,
    bootstrap_servers: BootstrapServers = DEFAULT_BOOTSTRAP_SERVERS,
) -> None:
    """Delete every record of a dead-letter topic, on all its partitions."""
    require_dead_letter_topic(topic)
    with TopicAdmin(kafka_settings(bootstrap_servers), client_id=CLIENT_ID) as admin:
        before = retained_offsets(admin, topic)
        total = sum(high - low for low, high in before.values())
        if total and not confirm:
            _ask(total, topic)
        targets = {p: high for p, (low, high) in before.items() if high > low}
        lows = admin.delete_records({topic: targets}).get(topic, {}) if targets else {}
    removed = [
        {
            "partition": partition,
            "removed": lows.get(partition, low) - low,
            "lowOffset": lows.get(partition, low),
            "highOffset": high,
        }
        for partition, (low, high) in sorted(before.items())
    ]
    emit({"topic": topic, "partitions": removed}, output, lambda: _purged_table(topic, removed))


def _ask(total: int, topic: str) -> None:
    if not sys.stdin.isatty():
        raise NotConfirmed(
            f"use --confirm to confirm the purge operation ({total} records in {topic}; "
            "no terminal to ask on)"
        )
    if not typer.confirm(f"Purge {total} records from {topic}?", default=False):
        raise NotConfirmed("nothing purged")


def _purged_table(topic: str, removed: list[dict[str, Any]]) -> RenderableType:
    total = sum(row["removed"] for row in removed)
    if not total:
        return Text(f"{topic} was already empty.", style="dim")
    return table(
        f"Purged {total} records from {topic}",
        (number("Partition"), number("Removed"), number("Low offset")),
        ((row["partition"], row["removed"], row["lowOffset"]) for row in removed),
    )
