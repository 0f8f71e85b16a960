"""``stats`` and ``watch``, and the cluster side of ``reprocess --via-cluster``.

The API server is found as kubectl finds it (:func:`dlq_operator.kube.connect_as_kubectl`):
in a pod, its service account; elsewhere ``KUBECONFIG`` or ``~/.kube/config``, whose current
context also gives the default namespace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from dlq_operator.api import (
    DEAD_LETTER_QUEUE,
    REPROCESS_REQUEST,
    TERMINAL_PHASES,
    DeadLetterQueueSpec,
    ReprocessPhase,
    ReprocessRequestSpec,
)
from dlq_operator.api.conditions import READY, get_condition
from dlq_operator.cli.errors import ExitCode
from dlq_operator.cli.options import FLAG, Namespace, Output
from dlq_operator.cli.output import (
    OutputFormat,
    age,
    emit,
    fields_table,
    number,
    stderr,
    table,
    word,
)
from dlq_operator.errors import ResourceNotFound

_ALERT_STYLES = {"OK": "green", "Warning": "yellow", "Critical": "bold red"}
_READY_STYLES = {"True": "green", "False": "red"}
_PHASE_STYLES = {"Succeeded": "green", "Failed": "bold red", "Cancelled": "yellow"}


class Cluster:
    """The API server and the namespace commands default to."""

    def __init__(self) -> None:
        # Imported here: the kubernetes client takes longer to import than most commands,
        # which only talk to Kafka, take to run.
        from dlq_operator.kube import connect_as_kubectl

        self.kube, self.default_namespace = connect_as_kubectl()

    def namespace(self, given: str | None) -> str:
        return given or self.default_namespace

    def dead_letter_queue(self, namespace: str, name: str) -> DeadLetterQueueSpec:
        found = self.kube.get_object(DEAD_LETTER_QUEUE.plural, namespace, name)
        if found is None:
            raise ResourceNotFound(f"DeadLetterQueue {namespace}/{name} not found")
        return DeadLetterQueueSpec.model_validate(found["spec"])

    def create_request(
        self, namespace: str, name: str | None, spec: ReprocessRequestSpec
    ) -> dict[str, Any]:
        """Create a ReprocessRequest; without a name, the API server makes one up."""
        metadata = (
            {"name": name}
            if name
            else {"generateName": f"{spec.dead_letter_queue_ref.name}-replay-"}
        )
        body = {
            "apiVersion": REPROCESS_REQUEST.api_version,
            "kind": REPROCESS_REQUEST.kind,
            "metadata": metadata,
            "spec": spec.model_dump(mode="json", exclude_none=True),
        }
        created = self.kube.create_object(REPROCESS_REQUEST.plural, namespace, body)
        # The API server's bookkeeping, which kubectl does not show either.
        created["metadata"].pop("managedFields", None)
        return created

    def request_status(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.kube.get_object(REPROCESS_REQUEST.plural, namespace, name)
        if found is None:
            raise ResourceNotFound(f"ReprocessRequest {namespace}/{name} not found")
        return dict(found.get("status") or {})


def stats_command(
    namespace: Namespace = None,
    all_namespaces: Annotated[
        bool,
        typer.Option(
            "--all-namespaces", "-A", metavar=FLAG, help="DeadLetterQueues of every namespace."
        ),
    ] = False,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Every DeadLetterQueue with its figures and alert level, from its status."""
    cluster = Cluster()
    scope = None if all_namespaces else cluster.namespace(namespace)
    queues = [
        queue_figures(item) for item in cluster.kube.list_objects(DEAD_LETTER_QUEUE.plural, scope)
    ]
    queues.sort(key=lambda q: (q["namespace"], q["name"]))
    emit(queues, output, lambda: _stats_table(queues, scope))


def watch_command(
    request: Annotated[
        str,
        typer.Argument(metavar="REQUEST", help="Name of the ReprocessRequest.", show_default=False),
    ],
    namespace: Namespace = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Follow a ReprocessRequest until it ends; exit 0 only when it Succeeded."""
    cluster = Cluster()
    follow_request(cluster, cluster.namespace(namespace), request, output)


def follow_request(cluster: Cluster, namespace: str, name: str, output: OutputFormat) -> None:
    """Poll the request every second with a progress bar, print how it ended, exit with it."""
    status = _poll_until_done(
        lambda: cluster.request_status(namespace, name), f"{namespace}/{name}"
    )
    emit(status, output, lambda: request_summary(f"ReprocessRequest {namespace}/{name}", status))
    if status.get("phase") != ReprocessPhase.SUCCEEDED:
        raise typer.Exit(ExitCode.FAILED)


def queue_figures(item: Mapping[str, Any]) -> dict[str, Any]:
    """What ``stats`` shows of one DeadLetterQueue object."""
    metadata, status = item["metadata"], item.get("status") or {}
    ready = get_condition(status.get("conditions"), READY) or {}
    return {
        "namespace": metadata["namespace"],
        "name": metadata["name"],
        # Before its first reconcile a queue has no status, yet its topic is already known.
        "topic": (status.get("topic") or {}).get("name")
        or DeadLetterQueueSpec.model_validate(item["spec"]).topic_name,
        "messages": status.get("messages"),
        "pending": status.get("pending"),
        "parked": status.get("parked"),
        "unresolved": status.get("unresolved"),
        "alertLevel": status.get("alertLevel"),
        "lastCheckedAt": status.get("lastCheckedAt"),
        "ready": ready.get("status"),
        "reason": ready.get("reason"),
    }


def request_summary(title: str, status: Mapping[str, Any]) -> RenderableType:
    """Phase, counters and message of a replay, as ``watch`` and ``reprocess`` print them."""
    phase = status.get("phase")
    return fields_table(
        title,
        {
            "Phase": _styled(phase, _PHASE_STYLES),
            "Matched": status.get("matched"),
            "Replayed": status.get("replayed"),
            "Skipped": status.get("skipped"),
            "Failed": status.get("failed"),
            "Message": status.get("message"),
        },
    )


def _poll_until_done(read: Callable[[], dict[str, Any]], what: str) -> dict[str, Any]:
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[phase]}: {task.fields[replayed]}/{task.fields[matched]} replayed"),
        TimeElapsedColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
    ) as bar:
        task = bar.add_task(what, total=None, phase="-", replayed=0, matched=0)
        while True:
            status = read()
            looked_at = (status.get("matched") or 0) + (status.get("skipped") or 0)
            left = sum(
                max(cp["endOffset"] - cp["nextOffset"], 0) for cp in status.get("checkpoint") or ()
            )
            done = status.get("phase") in TERMINAL_PHASES
            bar.update(
                task,
                total=looked_at + left if status.get("checkpoint") is not None else None,
                completed=looked_at + left if done else looked_at,
                phase=status.get("phase") or "Pending",
                replayed=status.get("replayed") or 0,
                matched=status.get("matched") or 0,
            )
            if done:
                return status
            time.sleep(1)


def _stats_table(queues: list[dict[str, Any]], namespace: str | None) -> RenderableType:
    if not queues:
        where = f"namespace {namespace}" if namespace else "any namespace"
        return Text(f"No DeadLetterQueues in {where}.", style="dim")
    now = datetime.now(UTC)
    columns: list[str | Column] = [
        "Name",
        "Topic",
        number("Messages"),
        number("Pending"),
        number("Parked"),
        number("Unresolved"),
        word("Alert"),
        word("Checked"),
        word("Ready"),
    ]
    if namespace is None:
        columns.insert(0, "Namespace")
    rows = []
    for q in queues:
        row = [
            q["name"],
            q["topic"],
            q["messages"],
            q["pending"],
            q["parked"],
            q["unresolved"],
            _styled(q["alertLevel"], _ALERT_STYLES),
            age(q["lastCheckedAt"], now),
            _styled(q["ready"], _READY_STYLES),
        ]
        if namespace is None:
            row.insert(0, q["namespace"])
        rows.append(row)
    return table(None, columns, rows)


def _styled(value: str | None, styles: Mapping[str, str]) -> Text | None:
    return None if value is None else Text(value, style=styles.get(value, ""))
