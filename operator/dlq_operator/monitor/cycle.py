"""One monitor cycle over all DLQs, planned and turned into status patches (pure).

A cycle, with the I/O done by its caller::

    targets = [target_of(resource) for resource in resources]
    query = plan_query(targets)                  # every topic and group, for ONE batched call
    offsets, committed = <kafka adapter>(query)  # a KafkaError: stale_patch() for every DLQ
    for resource, target in zip(resources, targets):
        observation = observe(target, offsets, committed)   # None: DLQ topic missing
        figures, samples[target.key] = compute_figures(
            observation, now=now, previous=samples.get(target.key))
        check = check_dlq(resource, figures, now=now, renotify_interval=...)
        # publish metrics, send check.notification, apply check.status_patch unless None

Quiet cycles write nothing. A DLQ's status is patched only when something a reader can see
changes: a figure, the alert level or a condition. ``lastCheckedAt`` rides along with such
patches and is otherwise refreshed by a heartbeat patch once per ``heartbeat`` (10 minutes
by default), so a reader can still tell a quiet DLQ from a stuck monitor. Writing it every
cycle would cost one API write and one watch event per DLQ per minute, for nothing.

Status fields owned by the monitor: ``messages``, ``pending``, ``parked``, ``unresolved``,
``inflowPerMinute``, ``oldestUnresolvedAt``, ``alertLevel``, ``lastNotifiedAt``,
``lastCheckedAt`` and the conditions ``DepthAlert`` and ``DepthKnown``.

- ``oldestUnresolvedAt`` is a timestamp, not an age: an age changes every cycle and would
  force a patch each time; a ``date`` printer column shows the timestamp as an age anyway.
  The age in seconds is a metric.
- ``inflowPerMinute`` is unknown on the first cycle after a restart; the status then keeps
  its previous value rather than flapping to null and back.
- JSON merge patches replace lists, so a patch that changes a condition carries the whole
  list, with other writers' conditions as they were read.
- The monitor never writes ``status.observedGeneration`` (the reconciler's "spec handled");
  its conditions carry ``observedGeneration``, the generation whose thresholds were used.

A DLQ whose check changed nothing is remembered as a :class:`QuietCheck`: while its inputs
(offsets, committed offsets, the object's resourceVersion) stay the same and its alert level
is OK, the next cycles skip it, until the heartbeat is due. Time alone changes nothing
else then (its inflow is 0, no re-notification waits) but the age of its oldest unresolved
record, a metric the caller keeps current from :attr:`QuietCheck.oldest_unresolved_at`.

A paused DLQ (annotation ``dlq.orion.io/paused: "true"``, which the reconciler also leaves
alone) is measured like any other but raises no alerts, as with ``spec.alerting.enabled:
false``: its level stays OK, so no Events and no webhooks. :attr:`DlqCheck.alerting` says
which DLQs raise alerts; it is the metric ``dlq_alerting_enabled``, which the chart's
Prometheus rules join so that they stay as quiet as the operator.

When the broker cannot be queried, :func:`stale_patch` sets ``DepthKnown`` to False with
the error's reason and keeps the old figures; it patches once, not on every failed cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from dlq_operator.api import DeadLetterQueueSpec, parse_duration
from dlq_operator.api.common import format_timestamp, parse_timestamp
from dlq_operator.api.conditions import (
    DEPTH_ALERT,
    DEPTH_CRITICAL,
    DEPTH_KNOWN,
    DEPTH_OK,
    DEPTH_WARNING,
    MEASURED,
    get_condition,
    set_condition,
)
from dlq_operator.api.naming import PAUSED_ANNOTATION, resolved_group_name, retry_group_name
from dlq_operator.monitor.alerts import (
    AlertLevel,
    AlertState,
    DepthReading,
    Notification,
    make_notification,
    next_alert,
)
from dlq_operator.monitor.depth import DepthFigures, DlqObservation, PartitionOffsets

_DEPTH_REASONS = {
    AlertLevel.OK: DEPTH_OK,
    AlertLevel.WARNING: DEPTH_WARNING,
    AlertLevel.CRITICAL: DEPTH_CRITICAL,
}
DEFAULT_HEARTBEAT = timedelta(minutes=10)

Resource = Mapping[str, Any]
TopicOffsets = Mapping[str, Mapping[int, tuple[int, int]]]
"""topic -> partition -> (low, high); a topic that does not exist is absent."""
GroupOffsets = Mapping[str, Mapping[str, Mapping[int, int]]]
"""group -> topic -> partition -> committed offset; nothing committed is absent."""


@dataclass(frozen=True)
class DlqTarget:
    """What the monitor queries for one DLQ resource."""

    namespace: str
    name: str
    dlq_topic: str
    parked_topic: str
    retry_enabled: bool

    # Cached: every cycle asks each of a thousand targets for these.
    @cached_property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @cached_property
    def retry_group(self) -> str:
        return retry_group_name(self.namespace, self.name)

    @cached_property
    def resolved_group(self) -> str:
        return resolved_group_name(self.namespace, self.name)


@dataclass(frozen=True)
class AlertRule:
    """What a DLQ alerts on: which figure, its thresholds, how often to repeat."""

    figure: str
    warning: int | None
    critical: int | None
    renotify_interval: timedelta | None
    enabled: bool = True
    """False: ``spec.alerting.enabled`` is false or the DLQ is paused (no thresholds)."""


@dataclass(frozen=True)
class _Compiled:
    """What a cycle needs from one generation of a DLQ's spec."""

    target: DlqTarget
    rule: AlertRule


_COMPILED: dict[tuple[str, int], _Compiled] = {}


def _compiled(resource: Resource) -> _Compiled:
    """Remembered per object and generation: a cycle over a thousand DLQs would otherwise
    validate a thousand unchanged specs, and parse their durations, every time."""
    metadata = resource["metadata"]
    key = (metadata.get("uid"), metadata.get("generation"))
    compiled = _COMPILED.get(key) if key[0] else None
    if compiled is None:
        spec = DeadLetterQueueSpec.model_validate(resource.get("spec") or {})
        compiled = _Compiled(_target(metadata, spec), _alert_rule(spec))
        if key[0]:
            if len(_COMPILED) > 100_000:  # old generations of long-gone objects
                _COMPILED.clear()
            _COMPILED[key] = compiled
    return compiled


def target_of(resource: Resource) -> DlqTarget:
    return _compiled(resource).target


def alert_rule_of(resource: Resource) -> AlertRule:
    """``spec.alerting``; alerting switched off, or the DLQ paused, means no thresholds at
    all. (The pause is an annotation: it changes no generation, so it is not compiled.)"""
    rule = _compiled(resource).rule
    if is_paused(resource):
        return AlertRule(
            figure=rule.figure, warning=None, critical=None, renotify_interval=None, enabled=False
        )
    return rule


def is_paused(resource: Resource) -> bool:
    annotations = resource["metadata"].get("annotations") or {}
    return annotations.get(PAUSED_ANNOTATION) == "true"


def _target(metadata: Mapping[str, Any], spec: DeadLetterQueueSpec) -> DlqTarget:
    return DlqTarget(
        namespace=metadata["namespace"],
        name=metadata["name"],
        dlq_topic=spec.topic_name,
        parked_topic=spec.parked_topic_name,
        retry_enabled=bool(spec.retry and spec.retry.policy_ref),
    )


def _alert_rule(spec: DeadLetterQueueSpec) -> AlertRule:
    alerting = spec.alerting
    if not alerting.enabled:
        return AlertRule(
            figure=alerting.metric.value,
            warning=None,
            critical=None,
            renotify_interval=None,
            enabled=False,
        )
    return AlertRule(
        figure=alerting.metric.value,
        warning=alerting.warn_threshold,
        critical=alerting.critical_threshold,
        renotify_interval=parse_duration(alerting.renotify_interval),
    )


@dataclass(frozen=True)
class OffsetQuery:
    """Everything one cycle asks the broker, for all DLQs at once."""

    topics: frozenset[str]
    groups: Mapping[str, frozenset[str]]
    """group -> the topics whose committed offsets are needed."""


def plan_query(targets: Iterable[DlqTarget]) -> OffsetQuery:
    topics: set[str] = set()
    groups: dict[str, frozenset[str]] = {}
    for target in targets:
        # Only retry workers park, so a parked topic is asked about only while retries are
        # on: a thousand queues without retries would otherwise double the metadata asked.
        if target.retry_enabled:
            topics |= {target.dlq_topic, target.parked_topic}
            groups[target.retry_group] = frozenset({target.dlq_topic})
            groups[target.resolved_group] = frozenset({target.parked_topic})
        else:
            topics.add(target.dlq_topic)
            groups[target.resolved_group] = frozenset({target.dlq_topic})
    return OffsetQuery(topics=frozenset(topics), groups=groups)


def observe(
    target: DlqTarget,
    offsets: TopicOffsets,
    committed: GroupOffsets,
    *,
    oldest_unresolved_timestamp: datetime | None = None,
) -> DlqObservation | None:
    """The observation of one DLQ from the batch result; None when its topic is missing."""
    dlq = offsets.get(target.dlq_topic)
    if dlq is None:
        return None
    resolved = committed.get(target.resolved_group, {})
    retry = committed.get(target.retry_group, {}) if target.retry_enabled else {}
    return DlqObservation(
        namespace=target.namespace,
        name=target.name,
        dlq_topic=target.dlq_topic,
        dlq={p: PartitionOffsets(*pair) for p, pair in dlq.items()},
        retry_enabled=target.retry_enabled,
        parked_topic=target.parked_topic,
        parked={
            p: PartitionOffsets(*pair) for p, pair in offsets.get(target.parked_topic, {}).items()
        },
        retry_committed=dict(retry.get(target.dlq_topic, {})),
        resolved_dlq=dict(resolved.get(target.dlq_topic, {})),
        resolved_parked=dict(resolved.get(target.parked_topic, {})),
        oldest_unresolved_timestamp=oldest_unresolved_timestamp,
    )


def inputs_of(target: DlqTarget, offsets: TopicOffsets, committed: GroupOffsets) -> tuple:
    """The parts of a cycle's broker answers that one DLQ's figures are computed from."""
    return (
        offsets.get(target.dlq_topic),
        offsets.get(target.parked_topic) if target.retry_enabled else None,
        committed.get(target.retry_group) if target.retry_enabled else None,
        committed.get(target.resolved_group),
    )


@dataclass(frozen=True)
class QuietCheck:
    """A check that changed nothing, with what it was computed from (see the module doc)."""

    inputs: tuple
    resource_version: str
    until: datetime
    oldest_unresolved_at: datetime | None

    def covers(self, inputs: tuple, resource: Resource, now: datetime) -> bool:
        """True when checking ``resource`` again would change nothing either."""
        return (
            now < self.until
            and resource["metadata"].get("resourceVersion") == self.resource_version
            and inputs == self.inputs
        )


def quiet_check(
    resource: Resource,
    inputs: tuple,
    figures: DepthFigures,
    check: DlqCheck,
    *,
    heartbeat: timedelta = DEFAULT_HEARTBEAT,
) -> QuietCheck | None:
    """The check as a :class:`QuietCheck`, or None when the same inputs could still lead
    to a different outcome later (an inflow to update, an alert to repeat)."""
    version = resource["metadata"].get("resourceVersion")
    last_checked = parse_timestamp((resource.get("status") or {}).get("lastCheckedAt"))
    if (
        check.status_patch is not None
        or check.notification is not None
        or check.level is not AlertLevel.OK
        or figures.inflow_per_minute != 0
        or version is None
        or last_checked is None
    ):
        return None
    return QuietCheck(
        inputs=inputs,
        resource_version=version,
        until=last_checked + heartbeat,
        oldest_unresolved_at=figures.oldest_unresolved_at,
    )


@dataclass(frozen=True)
class DlqCheck:
    """The outcome of one DLQ's check: what to publish, tell and write."""

    level: AlertLevel
    notification: Notification | None
    status_patch: dict[str, Any] | None
    alerting: bool = True
    """False when the DLQ raises no alerts at all: see :attr:`AlertRule.enabled`."""


def check_dlq(
    resource: Resource,
    figures: DepthFigures,
    *,
    now: datetime,
    heartbeat: timedelta = DEFAULT_HEARTBEAT,
) -> DlqCheck:
    target = target_of(resource)
    rule = alert_rule_of(resource)
    status = resource.get("status") or {}
    reading = DepthReading(
        namespace=target.namespace,
        name=target.name,
        topic=target.dlq_topic,
        value=getattr(figures, rule.figure),
        warning_threshold=rule.warning,
        critical_threshold=rule.critical,
        figure=rule.figure,
    )
    before = AlertState.from_status(status)
    renotify = rule.renotify_interval
    after, kind = next_alert(before, reading.level, now=now, renotify_interval=renotify)
    notification = (
        make_notification(kind, before, after, reading, now=now, renotify_interval=renotify)
        if kind is not None
        else None
    )
    patch = status_patch(
        status,
        figures,
        after,
        reading,
        generation=resource["metadata"].get("generation"),
        now=now,
        heartbeat=heartbeat,
    )
    return DlqCheck(
        level=after.level, notification=notification, status_patch=patch, alerting=rule.enabled
    )


def status_patch(
    status: Mapping[str, Any],
    figures: DepthFigures,
    alert: AlertState,
    reading: DepthReading,
    *,
    generation: int | None,
    now: datetime,
    heartbeat: timedelta = DEFAULT_HEARTBEAT,
) -> dict[str, Any] | None:
    """The merge patch for a successful check, or None when nothing visible changed."""
    oldest = figures.oldest_unresolved_at
    desired: dict[str, Any] = {
        "messages": figures.messages,
        "pending": figures.pending,
        "parked": figures.parked,
        "unresolved": figures.unresolved,
        "oldestUnresolvedAt": (
            format_timestamp(oldest, whole_seconds=True) if oldest is not None else None
        ),
        **alert.to_status(),
    }
    if figures.inflow_per_minute is not None:
        desired["inflowPerMinute"] = round(figures.inflow_per_minute, 2)
    patch = {key: value for key, value in desired.items() if status.get(key) != value}

    conditions = list(status.get("conditions") or ())
    alerting = "True" if alert.level is not AlertLevel.OK else "False"
    # The alert condition's transition time is when the alert episode (or the calm) began.
    updated = set_condition(
        conditions,
        DEPTH_ALERT,
        alerting,
        _DEPTH_REASONS[alert.level],
        reading.describe(),
        generation,
        alert.since or now,
    )
    updated = set_condition(
        updated,
        DEPTH_KNOWN,
        "True",
        MEASURED,
        "Figures computed from broker offsets.",
        generation,
        now,
    )
    if updated != conditions:
        patch["conditions"] = updated

    last_checked = parse_timestamp(status.get("lastCheckedAt"))
    if not patch and last_checked is not None and now - last_checked < heartbeat:
        return None
    patch["lastCheckedAt"] = format_timestamp(now, whole_seconds=True)
    return patch


def stale_patch(
    resource: Resource, *, reason: str, message: str, now: datetime
) -> dict[str, Any] | None:
    """Mark the figures as stale (``DepthKnown`` False); None when already marked so.

    ``reason`` is CamelCase, e.g. a :class:`~dlq_operator.errors.KafkaError`'s ``reason``;
    ``message`` must not vary between identical failures, or each cycle patches again.
    """
    status = resource.get("status") or {}
    previous = get_condition(status.get("conditions"), DEPTH_KNOWN)
    if (
        previous is not None
        and previous.get("status") == "False"
        and previous.get("reason") == reason
        and previous.get("message") == message
    ):
        return None
    generation = resource["metadata"].get("generation")
    conditions = set_condition(
        status.get("conditions"), DEPTH_KNOWN, "False", reason, message, generation, now
    )
    return {"conditions": conditions}
