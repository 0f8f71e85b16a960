"""Alert levels of a DLQ and when to tell somebody about them.

The original monitor alerted on every check while a queue stayed above a threshold. Here
each DLQ has an :class:`AlertState` and :func:`next_alert` decides, per check, whether the
check is worth a notification:

============================  ==============================================
change                        notification
============================  ==============================================
OK -> OK                      none
OK -> Warning / Critical      ``firing``
Warning -> Critical           ``firing`` (it got worse: same urgency as new)
Critical -> Warning           ``downgraded``: still alerting, so receivers must
                              learn the severity changed (Alertmanager ends the
                              critical alert and keeps a warning one)
Warning / Critical -> OK      ``resolved``
same non-OK level             ``renotify``, at most once per renotify interval
============================  ==============================================

So a DLQ critical for a day with a one-hour interval is announced once and re-announced
at most 24 times, however often it is checked. A renotify interval of None or zero turns
re-notifications off.

Thresholds compare with ``>=`` like the original design; a threshold of 0 (or None)
disables its level, since "alert when at least 0 messages" would alert on an empty queue.

The state lives in the DLQ's status, so an operator restart resumes it instead of
alerting again: ``alertLevel``, ``lastNotifiedAt`` and the ``lastTransitionTime`` of the
``DepthAlert`` condition, which is when the current alert episode (or the calm) began.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from dlq_operator.api import AlertLevel
from dlq_operator.api.common import format_timestamp, parse_timestamp
from dlq_operator.api.conditions import DEPTH_ALERT, get_condition


class NotificationKind(StrEnum):
    FIRING = "firing"
    DOWNGRADED = "downgraded"
    RENOTIFY = "renotify"
    RESOLVED = "resolved"


def _enabled(threshold: int | None) -> bool:
    return threshold is not None and threshold > 0


def evaluate_level(value: int, warning: int | None, critical: int | None) -> AlertLevel:
    if critical is not None and critical > 0 and value >= critical:
        return AlertLevel.CRITICAL
    if warning is not None and warning > 0 and value >= warning:
        return AlertLevel.WARNING
    return AlertLevel.OK


@dataclass(frozen=True)
class AlertState:
    """``since``: start of the current alert episode, or of the calm when OK."""

    level: AlertLevel = AlertLevel.OK
    since: datetime | None = None
    last_notified_at: datetime | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> AlertState:
        status = status or {}
        condition = get_condition(status.get("conditions"), DEPTH_ALERT) or {}
        return cls(
            level=AlertLevel.from_label(status.get("alertLevel")),
            since=parse_timestamp(condition.get("lastTransitionTime")),
            last_notified_at=parse_timestamp(status.get("lastNotifiedAt")),
        )

    def to_status(self) -> dict[str, Any]:
        """The status fields of this state; ``since`` is written by the alert condition."""
        notified = self.last_notified_at
        return {
            "alertLevel": self.level.label,
            "lastNotifiedAt": (
                format_timestamp(notified, whole_seconds=True) if notified is not None else None
            ),
        }


def _renotify_due(
    last_notified_at: datetime | None, now: datetime, renotify_interval: timedelta | None
) -> bool:
    if not renotify_interval:
        return False
    return last_notified_at is None or now - last_notified_at >= renotify_interval


def next_alert(
    state: AlertState,
    new_level: AlertLevel,
    *,
    now: datetime,
    renotify_interval: timedelta | None,
) -> tuple[AlertState, NotificationKind | None]:
    """The state after a check at ``new_level``, and what to notify (None: nothing)."""
    old = state.level
    if new_level == old:
        since, last = state.since or now, state.last_notified_at
        if old is AlertLevel.OK or not _renotify_due(last, now, renotify_interval):
            return AlertState(level=old, since=since, last_notified_at=last), None
        return AlertState(level=old, since=since, last_notified_at=now), NotificationKind.RENOTIFY
    if new_level is AlertLevel.OK:
        return AlertState(
            level=new_level, since=now, last_notified_at=now
        ), NotificationKind.RESOLVED
    # A change between Warning and Critical continues the episode that is already running.
    since = now if old is AlertLevel.OK else state.since or now
    kind = NotificationKind.FIRING if new_level > old else NotificationKind.DOWNGRADED
    return AlertState(level=new_level, since=since, last_notified_at=now), kind


@dataclass(frozen=True)
class DepthReading:
    """One DLQ's alerting figure and its thresholds, as measured in one check."""

    namespace: str
    name: str
    topic: str
    value: int
    warning_threshold: int | None
    critical_threshold: int | None
    figure: str = "unresolved"

    @property
    def level(self) -> AlertLevel:
        return evaluate_level(self.value, self.warning_threshold, self.critical_threshold)

    def describe(self) -> str:
        """E.g. "DLQ orders.dlq has 57 unresolved messages (critical threshold: 50)"."""
        count = f"{self.value} {self.figure} message{'' if self.value == 1 else 's'}"
        level = self.level
        if level is AlertLevel.CRITICAL:
            return f"DLQ {self.topic} has {count} (critical threshold: {self.critical_threshold})"
        if level is AlertLevel.WARNING:
            return f"DLQ {self.topic} has {count} (warning threshold: {self.warning_threshold})"
        lowest = next(
            (
                f"{word} threshold: {threshold}"
                for word, threshold in (
                    ("warning", self.warning_threshold),
                    ("critical", self.critical_threshold),
                )
                if _enabled(threshold)
            ),
            "alerting disabled",
        )
        return f"DLQ {self.topic} is below its thresholds with {count} ({lowest})"


@dataclass(frozen=True)
class Notification:
    """One message for people. ``started_at``: when the alert episode began.

    ``expires_at``: receivers that expect to be told again while an alert lasts
    (Alertmanager) may consider it over at this time if nothing newer came; it allows for
    one missed re-notification. None when re-notifications are off or for ``resolved``.
    """

    namespace: str
    name: str
    topic: str
    kind: NotificationKind
    level: AlertLevel
    previous_level: AlertLevel
    figure: str
    value: int
    warning_threshold: int | None
    critical_threshold: int | None
    message: str
    started_at: datetime
    at: datetime
    expires_at: datetime | None


def make_notification(
    kind: NotificationKind,
    before: AlertState,
    after: AlertState,
    reading: DepthReading,
    *,
    now: datetime,
    renotify_interval: timedelta | None,
) -> Notification:
    """The notification for a ``next_alert`` result (``before`` -> ``after``)."""
    firing = kind is not NotificationKind.RESOLVED
    episode_start = (after.since if firing else before.since) or now
    expires_at = now + 2 * renotify_interval if firing and renotify_interval else None
    return Notification(
        namespace=reading.namespace,
        name=reading.name,
        topic=reading.topic,
        kind=kind,
        level=after.level,
        previous_level=before.level,
        figure=reading.figure,
        value=reading.value,
        warning_threshold=reading.warning_threshold,
        critical_threshold=reading.critical_threshold,
        message=reading.describe(),
        started_at=episode_start,
        at=now,
        expires_at=expires_at,
    )
