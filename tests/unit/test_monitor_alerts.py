"""Alert levels and the notification state machine."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from dlq_operator.monitor.alerts import (
    AlertLevel,
    AlertState,
    DepthReading,
    NotificationKind,
    evaluate_level,
    make_notification,
    next_alert,
)

OK, WARNING, CRITICAL = AlertLevel.OK, AlertLevel.WARNING, AlertLevel.CRITICAL
T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("value", "level"),
    [(0, OK), (9, OK), (10, WARNING), (49, WARNING), (50, CRITICAL), (10_000, CRITICAL)],
)
def test_thresholds_are_inclusive(value: int, level: AlertLevel) -> None:
    assert evaluate_level(value, 10, 50) is level


@pytest.mark.parametrize("disabled", [0, None])
def test_a_zero_or_missing_threshold_disables_its_level(disabled: int | None) -> None:
    assert evaluate_level(0, disabled, disabled) is OK
    assert evaluate_level(100, disabled, 50) is CRITICAL
    assert evaluate_level(30, 10, disabled) is WARNING
    assert evaluate_level(1000, 10, disabled) is WARNING


def test_levels_are_ordered_and_labelled() -> None:
    assert OK < WARNING < CRITICAL
    assert [level.label for level in AlertLevel] == ["OK", "Warning", "Critical"]
    assert AlertLevel.from_label("Critical") is CRITICAL
    assert AlertLevel.from_label(None) is OK
    assert AlertLevel.from_label("bogus") is OK


def step(state: AlertState, level: AlertLevel, now: datetime, renotify=HOUR):
    return next_alert(state, level, now=now, renotify_interval=renotify)


def test_staying_ok_never_notifies() -> None:
    state, kind = step(AlertState(), OK, T0)
    assert kind is None
    assert state == AlertState(OK, since=T0, last_notified_at=None)
    assert step(state, OK, T0 + HOUR * 5) == (state, None)


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (OK, WARNING, NotificationKind.FIRING),
        (OK, CRITICAL, NotificationKind.FIRING),
        (WARNING, CRITICAL, NotificationKind.FIRING),
        (CRITICAL, WARNING, NotificationKind.DOWNGRADED),
        (WARNING, OK, NotificationKind.RESOLVED),
        (CRITICAL, OK, NotificationKind.RESOLVED),
    ],
)
def test_every_level_change_notifies(
    before: AlertLevel, after: AlertLevel, kind: NotificationKind
) -> None:
    now = T0 + timedelta(minutes=1)
    state, notified = step(AlertState(before, since=T0, last_notified_at=T0), after, now)
    assert notified is kind
    assert state.level is after
    assert state.last_notified_at == now


def test_a_change_between_alert_levels_continues_the_episode() -> None:
    firing = AlertState(WARNING, since=T0, last_notified_at=T0)
    worse, _ = step(firing, CRITICAL, T0 + HOUR)
    better, _ = step(worse, WARNING, T0 + 2 * HOUR)
    assert worse.since == better.since == T0


def test_a_new_episode_and_the_calm_after_it_start_at_their_transition() -> None:
    firing, _ = step(AlertState(OK, since=T0), WARNING, T0 + HOUR)
    assert firing.since == T0 + HOUR
    calm, _ = step(firing, OK, T0 + 2 * HOUR)
    assert calm.since == T0 + 2 * HOUR


def test_renotify_only_after_the_interval() -> None:
    state = AlertState(CRITICAL, since=T0, last_notified_at=T0)
    assert step(state, CRITICAL, T0 + HOUR - timedelta(seconds=1))[1] is None
    renotified, kind = step(state, CRITICAL, T0 + HOUR)
    assert kind is NotificationKind.RENOTIFY
    assert renotified == AlertState(CRITICAL, since=T0, last_notified_at=T0 + HOUR)


@pytest.mark.parametrize("off", [None, timedelta(0)])
def test_renotify_can_be_turned_off(off: timedelta | None) -> None:
    state = AlertState(CRITICAL, since=T0, last_notified_at=T0)
    assert step(state, CRITICAL, T0 + 100 * HOUR, renotify=off)[1] is None


def run(levels_by_minute, renotify=HOUR, start: AlertState | None = None):
    state, kinds = start or AlertState(), []
    for minute, level in levels_by_minute:
        state, kind = step(state, level, T0 + timedelta(minutes=minute), renotify)
        if kind is not None:
            kinds.append(kind)
    return state, kinds


def test_critical_for_a_day_checked_every_minute_renotifies_at_most_24_times() -> None:
    _, kinds = run((minute, CRITICAL) for minute in range(24 * 60))
    assert kinds[0] is NotificationKind.FIRING
    assert kinds.count(NotificationKind.RENOTIFY) <= 24
    assert kinds.count(NotificationKind.RENOTIFY) == 23
    assert len(kinds) == 24


def test_irregular_checks_never_renotify_more_often_than_the_interval() -> None:
    minutes = [0.0]
    while minutes[-1] < 24 * 60:
        minutes.append(minutes[-1] + 0.7 + (len(minutes) % 5) * 0.3)
    state, times = AlertState(), []
    for minute in minutes:
        now = T0 + timedelta(minutes=minute)
        state, kind = step(state, CRITICAL, now)
        if kind is not None:
            times.append(now)
    assert all(later - earlier >= HOUR for earlier, later in pairwise(times))
    assert len(times) <= 25


def test_restart_resumes_from_status_without_alerting_again() -> None:
    state, _ = run([(0, OK), (1, WARNING), (2, CRITICAL), (3, CRITICAL)])
    status = {
        **state.to_status(),
        "conditions": [
            {"type": "DepthAlert", "status": "True", "lastTransitionTime": "2026-01-01T00:01:00Z"}
        ],
    }
    restored = AlertState.from_status(status)
    assert restored == state
    after_restart, kinds = run([(minute, CRITICAL) for minute in range(4, 62)], start=restored)
    assert kinds == []
    assert run([(62, CRITICAL)], start=after_restart)[1] == [NotificationKind.RENOTIFY]


def test_state_from_an_empty_status_is_ok() -> None:
    assert AlertState.from_status(None) == AlertState()
    assert AlertState.from_status({"conditions": None, "lastNotifiedAt": "garbage"}) == AlertState()


def test_state_to_status_writes_level_and_last_notification() -> None:
    assert AlertState(WARNING, T0, T0 + HOUR).to_status() == {
        "alertLevel": "Warning",
        "lastNotifiedAt": "2026-01-01T01:00:00Z",
    }
    assert AlertState().to_status() == {"alertLevel": "OK", "lastNotifiedAt": None}


def reading(value: int, warning: int | None = 10, critical: int | None = 50) -> DepthReading:
    return DepthReading("shop", "orders", "orders.dlq", value, warning, critical)


def test_messages_name_the_topic_the_figure_and_the_threshold_crossed() -> None:
    assert (
        reading(57).describe()
        == "DLQ orders.dlq has 57 unresolved messages (critical threshold: 50)"
    )
    assert (
        reading(12).describe()
        == "DLQ orders.dlq has 12 unresolved messages (warning threshold: 10)"
    )
    assert reading(1, warning=1).describe() == (
        "DLQ orders.dlq has 1 unresolved message (warning threshold: 1)"
    )
    assert reading(3).describe() == (
        "DLQ orders.dlq is below its thresholds with 3 unresolved messages (warning threshold: 10)"
    )
    assert reading(3, warning=0).describe().endswith("(critical threshold: 50)")
    assert reading(3, None, None).describe().endswith("(alerting disabled)")


def test_a_firing_notification_carries_the_episode_and_an_expiry() -> None:
    before = AlertState(WARNING, since=T0, last_notified_at=T0)
    now = T0 + HOUR / 2
    after, kind = step(before, CRITICAL, now)
    assert kind is not None
    notification = make_notification(
        kind, before, after, reading(57), now=now, renotify_interval=HOUR
    )
    assert notification.kind is NotificationKind.FIRING
    assert (notification.level, notification.previous_level) == (CRITICAL, WARNING)
    assert (notification.figure, notification.value) == ("unresolved", 57)
    assert (notification.warning_threshold, notification.critical_threshold) == (10, 50)
    assert (
        notification.message == "DLQ orders.dlq has 57 unresolved messages (critical threshold: 50)"
    )
    assert notification.started_at == T0
    assert notification.at == now
    assert notification.expires_at == now + 2 * HOUR


def test_a_resolved_notification_reports_when_the_episode_began() -> None:
    before = AlertState(CRITICAL, since=T0, last_notified_at=T0)
    now = T0 + 3 * HOUR
    after, kind = step(before, OK, now)
    assert kind is NotificationKind.RESOLVED
    notification = make_notification(
        kind, before, after, reading(2), now=now, renotify_interval=HOUR
    )
    assert notification.started_at == T0
    assert notification.previous_level is CRITICAL
    assert notification.expires_at is None


def test_no_expiry_when_renotify_is_off() -> None:
    before = AlertState()
    after, kind = step(before, WARNING, T0, renotify=None)
    assert kind is not None
    notification = make_notification(
        kind, before, after, reading(12), now=T0, renotify_interval=None
    )
    assert notification.expires_at is None
