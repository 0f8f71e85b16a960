"""How commands print: a rich table for people, JSON or YAML for scripts.

Results go to stdout; progress bars and errors go to stderr, so ``-o json`` output can be
piped as it is. Progress bars are only drawn on a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

import yaml
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Column, Table
from rich.text import Text

# Piped output keeps each row on one line, as kubectl's does, rather than folding tables
# to the 80 columns rich assumes without a terminal: easier to read in a file, and to grep.
_UNBOUNDED = 10_000
stdout = Console(
    highlight=False,
    width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else _UNBOUNDED,
)
stderr = Console(stderr=True, highlight=False)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def emit(data: Any, output: OutputFormat, table: Callable[[], RenderableType]) -> None:
    """Print ``data`` as JSON or YAML, or what ``table`` draws from it."""
    if output is OutputFormat.JSON:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif output is OutputFormat.YAML:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        stdout.print(table())


def print_error(message: str) -> None:
    """One red line on stderr; the message is printed as it is, never read as markup."""
    stderr.print(Text.assemble(("error: ", "bold red"), (message, "red")), soft_wrap=True)


def print_note(message: str) -> None:
    stderr.print(Text(message, style="dim"), soft_wrap=True)


def truncate(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def table(
    title: str | None, columns: Iterable[str | Column], rows: Iterable[Iterable[Any]]
) -> RenderableType:
    """A table in the CLI's one style; ``None`` cells are shown as a dim dash.

    Columns are ruled by spaces, not lines, which leaves more of a narrow terminal to the
    values.
    """
    drawn = Table(
        *(
            column if isinstance(column, Column) else Column(column, overflow="fold")
            for column in columns
        ),
        header_style="bold",
        box=box.SIMPLE_HEAD,
    )
    for row in rows:
        drawn.add_row(*(_cell(value) for value in row))
    return _titled(title, drawn)


def number(header: str) -> Column:
    """A column of counts or offsets: right-aligned, never wrapped."""
    return Column(header, justify="right", no_wrap=True)


def word(header: str) -> Column:
    """A column of short words (levels, phases, ages), never wrapped."""
    return Column(header, no_wrap=True)


def age(timestamp: str | None, now: datetime) -> str | None:
    """How long ago an RFC 3339 ``timestamp`` was, as kubectl shows ages: 45s, 3m, 2h, 5d."""
    if timestamp is None:
        return None
    try:
        seconds = int((now - datetime.fromisoformat(timestamp)).total_seconds())
    except (TypeError, ValueError):
        return timestamp
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def fields_table(title: str | None, fields: Mapping[str, Any]) -> RenderableType:
    """Name/value pairs, one per line."""
    drawn = Table.grid(padding=(0, 2))
    drawn.add_column(style="bold")
    drawn.add_column(overflow="fold")
    for name, value in fields.items():
        drawn.add_row(name, _cell(value))
    return _titled(title, drawn)


def _titled(title: str | None, body: Table) -> RenderableType:
    # A line of its own: rich would fold a title wider than its table over several lines.
    return body if title is None else Group(Text(title, style="bold"), body)


def _cell(value: Any) -> RenderableType:
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, Text):
        return value
    return Text(str(value))
