"""Options several commands share, and the settings built from them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer

from dlq_operator.cli.output import OutputFormat
from dlq_operator.cli.parsing import (
    HeaderMatch,
    Position,
    parse_header,
    parse_moment,
    parse_position,
)
from dlq_operator.settings import KafkaSettings

# Help shows an option's metavar in place of its type; a flag takes no value to show.
FLAG = ""

Output = Annotated[
    OutputFormat,
    typer.Option(
        "--output", "-o", metavar="FORMAT", help="table, json or yaml.", case_sensitive=False
    ),
]
BootstrapServers = Annotated[
    str,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        metavar="HOST:PORT,...",
        # KAFKA_BROKERS is what the original dlq-admin read; it keeps working.
        envvar=["KAFKA_BROKERS", "DLQ_KAFKA_BOOTSTRAP_SERVERS"],
        show_envvar=True,
        help="Kafka brokers, host:port[,host:port...].",
    ),
]
DEFAULT_BOOTSTRAP_SERVERS = "localhost:9092"
Topic = Annotated[
    str,
    typer.Argument(metavar="TOPIC", help="The dead-letter (or parked) topic.", show_default=False),
]
Partitions = Annotated[
    list[int] | None,
    typer.Option("--partition", "-p", min=0, metavar="P", help="Only this partition (repeatable)."),
]

Force = Annotated[
    bool,
    typer.Option(
        "--force",
        metavar=FLAG,
        help="Read the topic even if it is not named as a dead-letter topic.",
    ),
]
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        metavar="NAMESPACE",
        help="Kubernetes namespace. Default: the kubeconfig context's.",
    ),
]

Parsed = TypeVar("Parsed")


def kafka_settings(bootstrap_servers: str) -> KafkaSettings:
    """Kafka settings: these servers, the rest (TLS, SASL, timeouts) from ``DLQ_KAFKA_*``."""
    return KafkaSettings(bootstrap_servers=bootstrap_servers)


def _as_parameter_error(parse: Callable[[str], Parsed]) -> Callable[[str], Parsed]:
    """``parse`` with its ``ValueError`` shown as a usage error that names the parameter."""

    def parser(text: str) -> Parsed:
        try:
            return parse(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parser


position_parser: Callable[[str], Position] = _as_parameter_error(parse_position)
header_parser: Callable[[str], HeaderMatch] = _as_parameter_error(parse_header)
moment_parser: Callable[[str], datetime] = _as_parameter_error(
    lambda text: parse_moment(text, datetime.now(UTC))
)
