"""``reprocess``: replay chosen dead letters here, or ask the cluster to (``--via-cluster``).

A local replay runs the same engine as a ReprocessRequest (:mod:`dlq_operator.reprocess`)
with a progress bar in place of a status checkpoint. Ctrl-C stops it after the batch in
flight was acknowledged. Naming the DeadLetterQueue (``--dlq``) also marks what was
replayed as resolved, so the queue's unresolved figures drop as they do after a request.
"""

from __future__ import annotations

import getpass
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import (
    Progress as ProgressBar,
)
from rich.text import Text

from dlq_operator import API_GROUP
from dlq_operator.api import (
    REPROCESS_REQUEST,
    DeadLetterQueueSpec,
    MessageSelector,
    ObjectRef,
    RateLimit,
    ReprocessPhase,
    ReprocessRequestSpec,
    ReprocessSource,
    ReprocessTarget,
)
from dlq_operator.api.naming import resolved_group_name
from dlq_operator.cli.cluster import Cluster, follow_request, request_summary
from dlq_operator.cli.errors import ExitCode
from dlq_operator.cli.options import (
    DEFAULT_BOOTSTRAP_SERVERS,
    FLAG,
    BootstrapServers,
    Namespace,
    Output,
    Partitions,
    Topic,
    header_parser,
    kafka_settings,
    moment_parser,
    position_parser,
)
from dlq_operator.cli.output import (
    OutputFormat,
    emit,
    number,
    print_error,
    print_note,
    stderr,
    table,
)
from dlq_operator.cli.parsing import HeaderMatch, Position, replay_source_topic
from dlq_operator.cli.topics import (
    locate,
    require_dead_letter_topic,
    require_partitions,
    retained_offsets,
)
from dlq_operator.errors import ConfigurationError
from dlq_operator.kafka import RecordReader, TopicAdmin
from dlq_operator.reprocess.engine import ReplayOutcome
from dlq_operator.reprocess.progress import Progress
from dlq_operator.reprocess.records import reprocessed_by_admin
from dlq_operator.reprocess.runner import plan_replay, replay
from dlq_operator.settings import KafkaSettings

CLIENT_ID = "dlq-admin"
_EXIT_CODES = {
    ReprocessPhase.SUCCEEDED: ExitCode.OK,
    ReprocessPhase.CANCELLED: ExitCode.INTERRUPTED,
    ReprocessPhase.FAILED: ExitCode.FAILED,
}

# -- the options, each parsed into the value the replay takes ------------------------------
RecordPosition = Annotated[
    Position | None,
    typer.Argument(
        parser=position_parser,
        metavar="PARTITION:OFFSET",
        help="Replay only this record; a bare OFFSET when only one partition holds it.",
        show_default=False,
    ),
]
FromOffset = Annotated[
    int | None,
    typer.Option(min=0, metavar="OFFSET", help="Only offsets from this one on, in each partition."),
]
ToOffset = Annotated[
    int | None,
    typer.Option(min=0, metavar="OFFSET", help="Only offsets up to this one (inclusive)."),
]
Since = Annotated[
    datetime | None,
    typer.Option(
        parser=moment_parser,
        metavar="TIME",
        help="Only records put on the topic at or after TIME: ISO-8601 (UTC unless "
        "it has a zone) or a time ago (30m, 2h, 3d).",
    ),
]
Until = Annotated[
    datetime | None,
    typer.Option(parser=moment_parser, metavar="TIME", help="Only records before TIME."),
]
ErrorCodes = Annotated[
    list[str] | None,
    typer.Option("--error-code", metavar="CODE", help="Only this error code (repeatable)."),
]
Keys = Annotated[
    list[str] | None, typer.Option("--key", metavar="KEY", help="Only this key (repeatable).")
]
Headers = Annotated[
    list[HeaderMatch] | None,
    typer.Option(
        "--header",
        parser=header_parser,
        metavar="NAME=VALUE",
        help="Only records with this header value (repeatable; all must match).",
    ),
]
MaxMessages = Annotated[
    int | None, typer.Option("--max", min=1, metavar="N", help="Replay at most N records.")
]
Rate = Annotated[
    float,
    typer.Option(
        min=0,
        metavar="PER_SECOND",
        help="At most this many records per second; 0: unthrottled.",
    ),
]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", metavar=FLAG, help="Only count what matches and show samples."),
]
TargetTopic = Annotated[
    str | None,
    typer.Option(metavar="TOPIC", help="Send every record here instead of to its original topic."),
]
KeepRetryCount = Annotated[
    bool,
    typer.Option(
        "--keep-retry-count",
        metavar=FLAG,
        help="Keep x-retry-count instead of resetting it to 0.",
    ),
]
Source = Annotated[
    ReprocessSource | None,
    typer.Option(
        metavar="dlq|parked",
        help="Replay from the topic (dlq) or its parked topic <topic>.parked.",
    ),
]
QueueName = Annotated[
    str | None,
    typer.Option(
        "--dlq",
        metavar="NAME",
        help="The DeadLetterQueue the topic belongs to: what is replayed counts as "
        "resolved for it. Required with --via-cluster.",
    ),
]
ViaCluster = Annotated[
    bool,
    typer.Option(
        "--via-cluster",
        metavar=FLAG,
        help="Create a ReprocessRequest instead of replaying here.",
    ),
]
RequestName = Annotated[
    str | None,
    typer.Option(
        "--name", metavar="NAME", help="Name of the ReprocessRequest. Default: generated."
    ),
]
Watch = Annotated[
    bool,
    typer.Option(
        "--watch", metavar=FLAG, help="With --via-cluster: follow the request to its end."
    ),
]


@dataclass(frozen=True, kw_only=True)
class ReplayOrder:
    """What one ``reprocess`` replays, where to and how fast: its options, parsed once."""

    topic: str  # the dead-letter or parked topic to read
    selector: MessageSelector
    target: ReprocessTarget
    rate_limit: RateLimit
    dry_run: bool

    def only(self, partition: int, offset: int) -> ReplayOrder:
        """This order narrowed to the one record at ``partition:offset``."""
        selector = MessageSelector.model_validate(
            self.selector.model_dump()
            | {"partitions": [partition], "fromOffset": offset, "toOffset": offset}
        )
        return replace(self, selector=selector)


def reprocess_command(
    topic: Topic,
    position: RecordPosition = None,
    partitions: Partitions = None,
    from_offset: FromOffset = None,
    to_offset: ToOffset = None,
    since: Since = None,
    until: Until = None,
    error_codes: ErrorCodes = None,
    keys: Keys = None,
    headers: Headers = None,
    max_messages: MaxMessages = None,
    rate: Rate = 0.0,
    dry_run: DryRun = False,
    target_topic: TargetTopic = None,
    keep_retry_count: KeepRetryCount = False,
    source: Source = None,
    dlq: QueueName = None,
    namespace: Namespace = None,
    via_cluster: ViaCluster = False,
    request_name: RequestName = None,
    watch: Watch = False,
    output: Output = OutputFormat.TABLE,
    bootstrap_servers: BootstrapServers = DEFAULT_BOOTSTRAP_SERVERS,
) -> None:
    """Replay dead letters to their original topic (or --target-topic).

    Every filter given must match. Replayed records carry the event as value, the
    original key, x-retry-count 0, x-original-offset, x-dlq-id and x-reprocessed-by.
    """
    if position is not None and (partitions or from_offset is not None or to_offset is not None):
        raise ConfigurationError(
            "give either a record position or --partition/--from-offset/--to-offset"
        )
    if (request_name or watch) and not via_cluster:
        raise ConfigurationError("--name and --watch go with --via-cluster")
    # Validated before anything is read: a selector admission would refuse is refused here.
    selector = MessageSelector(
        partitions=partitions or None,
        from_offset=from_offset,
        to_offset=to_offset,
        since=since,
        until=until,
        error_codes=error_codes or None,
        keys=keys or None,
        headers=dict(headers) if headers else None,
        max_messages=max_messages,
    )
    target = ReprocessTarget(topic=target_topic, reset_retry_count=not keep_retry_count)
    order = ReplayOrder(
        topic=_source_topic(topic, source),
        selector=selector,
        target=target,
        rate_limit=RateLimit(messages_per_second=rate),
        dry_run=dry_run,
    )
    if via_cluster:
        request_replay(
            order,
            dlq=dlq,
            position=position,
            namespace=namespace,
            name=request_name,
            watch=watch,
            output=output,
        )
    else:
        replay_here(
            kafka_settings(bootstrap_servers),
            order,
            position=position,
            dlq=dlq,
            namespace=namespace,
            output=output,
        )


def replay_here(
    settings: KafkaSettings,
    order: ReplayOrder,
    *,
    position: Position | None,
    dlq: str | None,
    namespace: str | None,
    output: OutputFormat,
) -> None:
    """Replay ``order`` in this process, with a progress bar; exit with its outcome."""
    resolved_group = _resolved_group(order.topic, dlq, namespace)
    with (
        TopicAdmin(settings, client_id=CLIENT_ID) as admin,
        RecordReader(settings, client_id=CLIENT_ID) as reader,
    ):
        ranges = retained_offsets(admin, order.topic)
        require_partitions(order.topic, ranges, order.selector.partitions or ())
        if position is not None:
            order = order.only(*locate(order.topic, ranges, position))
        progress = plan_replay(admin, reader, order.topic, order.selector)
    outcome = _replay_with_progress_bar(
        settings, order, progress=progress, resolved_group=resolved_group
    )
    result = _outcome_fields(order, outcome)
    emit(result, output, lambda: _outcome_view(result))
    if outcome.phase is not ReprocessPhase.SUCCEEDED:
        raise typer.Exit(_EXIT_CODES[outcome.phase])
    if position is not None and not order.dry_run and not outcome.progress.replayed:
        # Asked for one record by name, a replay that sent nothing is no success.
        print_error(f"the record was not replayed: {outcome.message}")
        raise typer.Exit(ExitCode.FAILED)


def request_replay(
    order: ReplayOrder,
    *,
    dlq: str | None,
    position: Position | None,
    namespace: str | None,
    name: str | None,
    watch: bool,
    output: OutputFormat,
) -> None:
    """Create a ReprocessRequest for DeadLetterQueue ``dlq`` that carries out ``order``
    (from its dead-letter or its parked topic); with ``watch``, follow it to its end."""
    if dlq is None:
        raise ConfigurationError("--via-cluster needs --dlq NAME")
    if position is not None:
        if position.partition is None:
            raise ConfigurationError("--via-cluster needs the record as PARTITION:OFFSET")
        order = order.only(position.partition, position.offset)
    cluster = Cluster()
    namespace = cluster.namespace(namespace)
    queue = cluster.dead_letter_queue(namespace, dlq)
    spec = ReprocessRequestSpec(
        dead_letter_queue_ref=ObjectRef(name=dlq),
        source=_source_in(queue, order.topic, f"{namespace}/{dlq}"),
        selector=order.selector,
        target=order.target,
        rate_limit=order.rate_limit,
        dry_run=order.dry_run,
    )
    created = cluster.create_request(namespace, name, spec)
    created_name = created["metadata"]["name"]
    notice = f"{REPROCESS_REQUEST.kind.lower()}.{API_GROUP}/{created_name} created"
    if watch:
        print_note(notice)
        follow_request(cluster, namespace, created_name, output)
    else:
        emit(created, output, lambda: Text(notice))


def _source_topic(topic: str, source: ReprocessSource | None) -> str:
    try:
        return replay_source_topic(topic, source)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def _source_in(queue: DeadLetterQueueSpec, topic: str, name: str) -> ReprocessSource:
    if topic == queue.topic_name:
        return ReprocessSource.DLQ
    if topic == queue.parked_topic_name:
        return ReprocessSource.PARKED
    raise ConfigurationError(
        f"{topic} is not a topic of DeadLetterQueue {name}: "
        f"it has {queue.topic_name} and {queue.parked_topic_name}"
    )


def _resolved_group(topic: str, dlq: str | None, namespace: str | None) -> str | None:
    """The group that marks the replayed records resolved; the topic checked either way."""
    if dlq is None:
        require_dead_letter_topic(topic)
        return None
    cluster = Cluster()
    namespace = cluster.namespace(namespace)
    _source_in(cluster.dead_letter_queue(namespace, dlq), topic, f"{namespace}/{dlq}")
    return resolved_group_name(namespace, dlq)


def _replay_with_progress_bar(
    settings: KafkaSettings,
    order: ReplayOrder,
    *,
    progress: Progress,
    resolved_group: str | None,
) -> ReplayOutcome:
    to_scan = sum(cp.end_offset - cp.next_offset for cp in progress.checkpoint.values())
    with (
        ProgressBar(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[matched]} matched, {task.fields[replayed]} replayed"),
            TimeElapsedColumn(),
            console=stderr,
            disable=not stderr.is_terminal,
        ) as bar,
        _cancelled_by_ctrl_c() as cancel,
    ):
        task = bar.add_task(
            f"{'Dry run of ' if order.dry_run else 'Replaying '}{order.topic}",
            total=to_scan,
            matched=0,
            replayed=0,
        )
        outcome = replay(
            settings,
            source_topic=order.topic,
            selector=order.selector,
            target=order.target,
            rate=order.rate_limit.messages_per_second,
            dry_run=order.dry_run,
            reprocessed_by=reprocessed_by_admin(_user()),
            progress=progress,
            checkpointer=_BarUpdater(bar, task, progress),
            cancel=cancel,
            resolved_group=resolved_group,
        )
        if outcome.phase is ReprocessPhase.SUCCEEDED:
            bar.update(task, completed=to_scan)
    return outcome


class _BarUpdater:
    """Stands in for a checkpointer: a local replay is not resumed, its bar moves instead."""

    def __init__(self, bar: ProgressBar, task: TaskID, progress: Progress) -> None:
        self._bar = bar
        self._task = task
        self._started = {p: cp.next_offset for p, cp in progress.checkpoint.items()}

    def save(self, progress: Progress) -> None:
        scanned = sum(cp.next_offset - self._started[p] for p, cp in progress.checkpoint.items())
        self._bar.update(
            self._task, completed=scanned, matched=progress.matched, replayed=progress.replayed
        )


@contextmanager
def _cancelled_by_ctrl_c() -> Iterator[threading.Event]:
    """An event Ctrl-C sets, so the replay stops at its checkpoint; a second one aborts."""
    cancel = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        stderr.print("Stopping after the batch in flight (Ctrl-C again to abort)…")
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _outcome_fields(order: ReplayOrder, outcome: ReplayOutcome) -> dict[str, Any]:
    progress = outcome.progress
    fields: dict[str, Any] = {
        "source": order.topic,
        "dryRun": order.dry_run,
        "phase": str(outcome.phase),
        "matched": progress.matched,
        "replayed": progress.replayed,
        "skipped": progress.skipped,
        "failed": progress.failed,
        "message": outcome.message,
    }
    if order.dry_run:
        fields["samples"] = [s.model_dump(mode="json") for s in outcome.samples]
    return fields


def _outcome_view(result: dict[str, Any]) -> RenderableType:
    title = f"{'Dry run of a replay' if result['dryRun'] else 'Replay'} from {result['source']}"
    summary = request_summary(title, result)
    if not result.get("samples"):
        return summary
    samples = table(
        "Samples",
        (number("P"), number("Offset"), "Key", "Error code", "To topic"),
        (
            (s["partition"], s["offset"], s["key"], s["errorCode"], s["originalTopic"])
            for s in result["samples"]
        ),
    )
    return Group(summary, Text(), samples)
