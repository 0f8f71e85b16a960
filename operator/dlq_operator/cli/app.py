"""The ``dlq-admin`` program (also ``kubectl-dlq``, so ``kubectl dlq …`` works)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from dlq_operator import __version__
from dlq_operator.cli.cluster import stats_command, watch_command
from dlq_operator.cli.errors import EXIT_CODES_HELP, exit_code_for
from dlq_operator.cli.options import FLAG
from dlq_operator.cli.output import print_error
from dlq_operator.cli.purge import purge_command
from dlq_operator.cli.records import list_command, show_command
from dlq_operator.cli.replay import reprocess_command
from dlq_operator.errors import DlqError
from dlq_operator.logs import configure_logging

KUBECTL_PLUGIN = "kubectl-dlq"

app = typer.Typer(
    epilog=f"Kafka: --bootstrap-servers, KAFKA_BROKERS or DLQ_KAFKA_BOOTSTRAP_SERVERS. "
    f"Kubernetes: KUBECONFIG. {EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("list")(list_command)
app.command("show")(show_command)
app.command("reprocess")(reprocess_command)
app.command("purge")(purge_command)
app.command("stats")(stats_command)
app.command("watch")(watch_command)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"dlq-admin {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        metavar=FLAG,
        callback=_show_version,
        is_eager=True,
        help="Print the version.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", metavar=FLAG, help="Debug logging (Kafka client included)."
    ),
) -> None:
    """Dead-letter queue administration: look at dead letters, replay them, purge them."""
    if verbose:
        configure_logging(verbose=True)


def program_name(argv0: str) -> str:
    """The name help shows: ``kubectl dlq`` when kubectl runs the plugin, else the file's."""
    name = Path(argv0).name
    return "kubectl dlq" if name == KUBECTL_PLUGIN else name or "dlq-admin"


def main() -> None:
    """Run a command; errors end it with one line on stderr and their exit code."""
    try:
        app(prog_name=program_name(sys.argv[0]))
    except (DlqError, ValidationError) as error:
        print_error(_one_line(error))
        sys.exit(exit_code_for(error))


def _one_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
    return str(error)
