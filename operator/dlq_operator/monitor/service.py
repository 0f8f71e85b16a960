"""The periodic depth monitor: one cycle for all DLQs, on a fixed schedule.

Each cycle lists the DeadLetterQueue objects once, asks the broker for the offsets of every
DLQ and parked topic and the committed offsets of every retry and resolved group in a
constant number of batched requests (:mod:`.cycle` plans them), computes each DLQ's
figures, and then writes only what changed: status patches, metrics, Events and webhook
notifications. A DLQ whose last check changed nothing is skipped while its inputs stay the
same (see :class:`~dlq_operator.monitor.cycle.QuietCheck`), and the timestamps of the
oldest unresolved records are read only where the first unresolved offset moved. Webhooks
are sent in the background, so a slow or failing sink never delays the next cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from dlq_operator.api import DEAD_LETTER_QUEUE
from dlq_operator.api.conditions import DEPTH_ALERT, DEPTH_KNOWN, upsert_condition
from dlq_operator.errors import DlqError, KafkaError, TopicNotFound
from dlq_operator.kafka import RecordReader, TopicAdmin
from dlq_operator.kube import KubeClient, StatusWrite
from dlq_operator.monitor.cycle import (
    DlqTarget,
    QuietCheck,
    check_dlq,
    inputs_of,
    observe,
    plan_query,
    quiet_check,
    stale_patch,
    target_of,
)
from dlq_operator.monitor.depth import (
    InflowSample,
    compute_figures,
    first_unresolved_offsets,
    oldest_of,
)
from dlq_operator.monitor.metrics import MonitorMetrics
from dlq_operator.monitor.sinks import WebhookSinkConfig, event_for, send_notification
from dlq_operator.settings import KafkaSettings

log = logging.getLogger(__name__)
# How long the monitor's TopicAdmin takes a topic's partitions from what it saw before: as
# long as Kafka's clients keep metadata (metadata.max.age.ms), so a steady cycle sends only
# ListOffsets and OffsetFetch requests. A topic's new partitions are counted within that.
PARTITION_CACHE_SECONDS = 300.0
# The monitor reads one record per partition (the oldest unresolved one's timestamp).
MONITOR_FETCH_BYTES = 16 * 1024
MONITOR_CONDITIONS = frozenset({DEPTH_ALERT, DEPTH_KNOWN})


def monitor_clients(kafka: KafkaSettings) -> tuple[TopicAdmin, RecordReader]:
    """The monitor's Kafka clients, configured as the operator runs them (they connect on
    first use)."""
    admin = TopicAdmin(
        kafka, client_id="dlq-operator-monitor", partition_cache_seconds=PARTITION_CACHE_SECONDS
    )
    reader = RecordReader(
        kafka, client_id="dlq-operator-monitor-reader", partition_fetch_bytes=MONITOR_FETCH_BYTES
    )
    return admin, reader


@dataclass
class CycleReport:
    """What one cycle did, for logs, tests and benchmarks."""

    dlqs: int = 0
    skipped: int = 0  # quiet DLQs whose inputs did not change
    patches: int = 0
    notifications: int = 0
    seconds: float = 0.0
    error: str | None = None
    patched: list[tuple[str, str]] = field(default_factory=list)


class DepthMonitor:
    """Measures every DLQ once per ``interval`` seconds."""

    def __init__(
        self,
        admin: TopicAdmin,
        kube: KubeClient,
        sinks: Iterable[WebhookSinkConfig] = (),
        *,
        reader: RecordReader | None = None,
        interval: float = 60.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        resources: Callable[[], Iterable[dict[str, Any]]] | None = None,
        metrics: MonitorMetrics | None = None,
    ) -> None:
        self.admin = admin
        # The operator passes the metrics it serves; without them, a registry nobody reads.
        self.metrics = metrics or MonitorMetrics(CollectorRegistry())
        # Reads the timestamps of the oldest unresolved records; without one, none are known.
        self.reader = reader
        self.kube = kube
        # The operator passes its watch-fed cache of DLQ objects; without one, each cycle
        # lists them from the API server.
        self.resources = resources or (lambda: self.kube.list_objects(DEAD_LETTER_QUEUE.plural))
        self.sinks = list(sinks)
        self.interval = interval
        self.now = now
        self.samples: dict[tuple[str, str], InflowSample] = {}
        self.quiet: dict[tuple[str, str], QuietCheck] = {}
        self.measured_at: datetime | None = None  # of the last cycle that read offsets
        self.timestamps: dict[tuple[str, int, int], int] = {}  # see monitor.depth.oldest_of
        self.known: set[tuple[str, str]] = set()
        # The last status written per DLQ, until the cache shows it (see _freshest).
        self.written: dict[tuple[str, str], StatusWrite] = {}
        self.deliveries: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        """Runs cycles until cancelled; a cycle that overruns delays the next, never skips
        the schedule's rhythm."""
        next_start = time.monotonic()
        while True:
            try:
                report = await self.cycle()
                log.debug("depth cycle: %s", report)
            except DlqError as exc:
                self.metrics.check_errors.inc()
                log.warning("depth cycle failed: %s", exc)
            except Exception:
                # A bug must not end monitoring for good: say so loudly, try next cycle.
                self.metrics.check_errors.inc()
                log.exception("depth cycle failed unexpectedly")
            next_start += self.interval
            await asyncio.sleep(max(next_start - time.monotonic(), 0.0))

    async def cycle(self) -> CycleReport:
        """One measurement of every DLQ."""
        started = time.monotonic()
        report = CycleReport()
        resources = [
            self._freshest(r)
            for r in await asyncio.to_thread(lambda: list(self.resources()))
            if not r["metadata"].get("deletionTimestamp")
        ]
        checked = []
        for resource in resources:
            try:
                checked.append((resource, target_of(resource)))
            except ValidationError:
                continue  # admission refuses such specs; an old object is not worth a crash
        report.dlqs = len(checked)
        self._forget_deleted({target.key for _, target in checked})
        query = plan_query(target for _, target in checked)
        try:
            # Two different clients inside the admin: their round trips overlap.
            offsets, committed = await asyncio.gather(
                asyncio.to_thread(self.admin.list_offsets, query.topics),
                asyncio.to_thread(self.admin.committed_offsets, query.groups),
            )
        except KafkaError as exc:
            self.metrics.check_errors.inc()
            report.error = str(exc)
            message = f"figures are stale: Kafka could not be queried ({exc.reason})"
            patches = [
                (r, stale_patch(r, reason=exc.reason, message=message, now=self.now()))
                for r, _ in checked
            ]
            await self._apply(patches, report)
            return self._finish(report, started)

        now = self.now()
        previous_cycle, self.measured_at = self.measured_at, now
        patches = []
        measured = []
        for resource, target in checked:
            inputs = inputs_of(target, offsets, committed)
            if self._still_quiet(target, inputs, resource, now, previous_cycle):
                report.skipped += 1
                continue
            observation = observe(target, offsets, committed)
            if observation is None:
                message = f"topic {target.dlq_topic} does not exist"
                patches.append(
                    (
                        resource,
                        stale_patch(
                            resource, reason=TopicNotFound.reason, message=message, now=now
                        ),
                    )
                )
                continue
            measured.append((resource, target, inputs, observation))

        firsts = [first_unresolved_offsets(observation) for *_, observation in measured]
        await self._read_timestamps(firsts)
        for (resource, target, inputs, observation), first in zip(measured, firsts, strict=True):
            observation = replace(
                observation, oldest_unresolved_timestamp=oldest_of(first, self.timestamps)
            )
            figures, self.samples[target.key] = compute_figures(
                observation, now=now, previous=self.samples.get(target.key)
            )
            check = check_dlq(resource, figures, now=now)
            self.metrics.publish_figures(
                target.namespace,
                target.name,
                target.dlq_topic,
                figures,
                check.level,
                alerting=check.alerting,
            )
            if check.notification is not None:
                report.notifications += 1
                await self._notify(resource, check.notification)
            patches.append((resource, check.status_patch))
            quiet = quiet_check(resource, inputs, figures, check)
            if quiet is not None:
                self.quiet[target.key] = quiet
        await self._apply(patches, report)
        return self._finish(report, started)

    def _finish(self, report: CycleReport, started: float) -> CycleReport:
        report.seconds = time.monotonic() - started
        self.metrics.check_duration.observe(report.seconds)
        return report

    async def _apply(
        self, patches: list[tuple[dict[str, Any], dict[str, Any] | None]], report: CycleReport
    ) -> None:
        changed = [(r, p) for r, p in patches if p]
        results = await asyncio.gather(
            *(
                asyncio.to_thread(
                    self.kube.update_status, DEAD_LETTER_QUEUE.plural, resource, _rebased(patch)
                )
                for resource, patch in changed
            ),
            return_exceptions=True,
        )
        for (resource, _), result in zip(changed, results, strict=True):
            key = (resource["metadata"]["namespace"], resource["metadata"]["name"])
            if isinstance(result, DlqError):
                log.warning("status of %s/%s not written: %s", *key, result)
            elif isinstance(result, BaseException):
                raise result
            elif result is not None:
                self.written[key] = result
                report.patched.append(key)
        report.patches = len(report.patched)

    async def _notify(self, resource: dict[str, Any], notification: Any) -> None:
        """An Event now; webhooks in the background, so sinks never hold the cycle up."""
        event = event_for(notification)
        try:
            await asyncio.to_thread(
                self.kube.post_event, resource, event.type, event.reason, event.message
            )
        except DlqError as exc:
            log.warning("could not post event %s: %s", event.reason, exc)
        if self.sinks:
            task = asyncio.create_task(send_notification(notification, self.sinks, self.metrics))
            self.deliveries.add(task)
            task.add_done_callback(self.deliveries.discard)

    def _still_quiet(
        self,
        target: DlqTarget,
        inputs: tuple,
        resource: dict[str, Any],
        now: datetime,
        previous_cycle: datetime | None,
    ) -> bool:
        """True when checking the DLQ again would change nothing (see QuietCheck); only the
        age of its oldest unresolved record moves on."""
        quiet = self.quiet.get(target.key)
        if quiet is None:
            return False
        if quiet.covers(inputs, resource, now):
            if quiet.oldest_unresolved_at is not None:
                age = (now - quiet.oldest_unresolved_at).total_seconds()
                self.metrics.publish_oldest_age(*target.key, age)
            return True
        del self.quiet[target.key]
        # Unchanged until the previous cycle: the inflow counts from there.
        sample = self.samples.get(target.key)
        if sample is not None and previous_cycle is not None:
            self.samples[target.key] = replace(sample, at=previous_cycle)
        return False

    async def _read_timestamps(self, firsts: list[dict[tuple[str, int], int]]) -> None:
        """Timestamps of the first unresolved records, read only where a position moved
        (none in a steady cycle); the cache keeps the positions still in use."""
        wanted = {(topic, p, offset) for first in firsts for (topic, p), offset in first.items()}
        missing = {(topic, p): offset for topic, p, offset in wanted - self.timestamps.keys()}
        if missing and self.reader is not None:
            try:
                read = await asyncio.to_thread(self.reader.first_timestamps, missing)
            except KafkaError as exc:
                log.warning("oldest unresolved records not read: %s", exc)
                read = {}
            for (topic, p), timestamp in read.items():
                self.timestamps[topic, p, missing[topic, p]] = timestamp
        self.timestamps = {k: v for k, v in self.timestamps.items() if k in wanted}

    def _forget_deleted(self, current: set[tuple[str, str]]) -> None:
        for namespace, name in self.known - current:
            self.metrics.forget(namespace, name)
            self.samples.pop((namespace, name), None)
            self.quiet.pop((namespace, name), None)
            self.written.pop((namespace, name), None)
        self.known = current

    def _freshest(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The DLQ as this monitor last wrote it while the watch-fed cache still shows the
        version that write replaced: a cycle right after another must not take the old
        alert level for the current one and notify twice."""
        key = (resource["metadata"]["namespace"], resource["metadata"]["name"])
        written = self.written.pop(key, None)
        version = resource["metadata"].get("resourceVersion")
        if written is not None and version == written.replaced_version:
            self.written[key] = written  # still unseen: the next cycle may need it too
            return written.written
        return resource


def _rebased(patch: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The patch for the object as it is now: the monitor's own conditions laid over the
    current list, so another writer's conditions written meanwhile are kept."""
    own = [c for c in patch.get("conditions", ()) if c["type"] in MONITOR_CONDITIONS]

    def compute(current: dict[str, Any]) -> dict[str, Any]:
        if not own:
            return patch
        conditions = (current.get("status") or {}).get("conditions") or []
        for condition in own:
            conditions = upsert_condition(conditions, condition)
        return {**patch, "conditions": conditions}

    return compute
