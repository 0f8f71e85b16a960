"""Cycle planning, observations and status patches."""

from datetime import UTC, datetime, timedelta
from typing import Any

from dlq_operator.api.common import parse_timestamp as parse_time
from dlq_operator.api.conditions import get_condition, upsert_condition
from dlq_operator.monitor.alerts import AlertLevel, NotificationKind
from dlq_operator.monitor.cycle import (
    DlqCheck,
    DlqTarget,
    check_dlq,
    observe,
    plan_query,
    quiet_check,
    stale_patch,
    target_of,
)
from dlq_operator.monitor.depth import DepthFigures, PartitionOffsets

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def find_condition(status: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    return get_condition((status or {}).get("conditions"), type_)


def resource(status: dict[str, Any] | None = None, *, retry: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "sourceTopic": "orders",
        "alerting": {"warnThreshold": 10, "criticalThreshold": 50, "renotifyInterval": "1h"},
    }
    if retry:
        spec["retry"] = {"policyRef": {"name": "standard"}}
    return {
        "metadata": {"namespace": "shop", "name": "orders", "generation": 3},
        "spec": spec,
        "status": status or {},
    }


def figures(unresolved: int = 0, **overrides: Any) -> DepthFigures:
    values: dict[str, Any] = {
        "messages": unresolved,
        "pending": unresolved,
        "parked": 0,
        "unresolved": unresolved,
        "inflow_per_minute": 0.0,
        "oldest_unresolved_at": None,
        "oldest_unresolved_age_seconds": None,
    }
    values.update(overrides)
    return DepthFigures(**values)


def apply(status: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON merge patch on the status, as the API server applies it."""
    merged = dict(status)
    for key, value in (patch or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def check(status: dict[str, Any], depth: DepthFigures, minute: int = 0) -> DlqCheck:
    """One check of the ``orders`` DLQ at ``minute`` with a one-hour renotify interval."""
    return check_dlq(resource(status), depth, now=T0 + minute * MINUTE)


def checked(status: dict[str, Any], depth: DepthFigures, minute: int = 0) -> dict[str, Any]:
    """The status after a check's patch."""
    return apply(status, check(status, depth, minute).status_patch)


def stale(status: dict[str, Any], reason: str, message: str, minute: int) -> dict[str, Any] | None:
    return stale_patch(resource(status), reason=reason, message=message, now=T0 + minute * MINUTE)


def test_target_of_a_resource() -> None:
    assert target_of(resource()) == DlqTarget(
        namespace="shop",
        name="orders",
        dlq_topic="orders.dlq",
        parked_topic="orders.dlq.parked",
        retry_enabled=True,
    )
    assert not target_of(resource(retry=False)).retry_enabled


def test_one_query_plans_every_topic_and_group() -> None:
    with_retry = target_of(resource())
    without = DlqTarget("shop", "refunds", "refunds.dlq", "refunds.dlq.parked", False)
    query = plan_query([with_retry, without])
    # Without retries nothing is parked: the parked topic is not asked about.
    assert query.topics == {"orders.dlq", "orders.dlq.parked", "refunds.dlq"}
    assert query.groups == {
        "dlq-operator.retry.shop.orders": {"orders.dlq"},
        "dlq-operator.resolved.shop.orders": {"orders.dlq.parked"},
        "dlq-operator.resolved.shop.refunds": {"refunds.dlq"},
    }


def test_observe_picks_this_dlqs_part_of_the_batch() -> None:
    target = target_of(resource())
    offsets = {"orders.dlq": {0: (1, 9)}, "orders.dlq.parked": {0: (0, 2)}, "x": {0: (0, 1)}}
    committed = {
        "dlq-operator.retry.shop.orders": {"orders.dlq": {0: 4}},
        "dlq-operator.resolved.shop.orders": {"orders.dlq.parked": {0: 1}},
    }
    observation = observe(target, offsets, committed)
    assert observation is not None
    assert observation.dlq == {0: PartitionOffsets(1, 9)}
    assert observation.parked == {0: PartitionOffsets(0, 2)}
    assert observation.retry_committed == {0: 4}
    assert observation.resolved_parked == {0: 1}
    assert observation.retry_enabled


def test_observe_without_parked_topic_or_commits() -> None:
    observation = observe(target_of(resource()), {"orders.dlq": {0: (0, 3)}}, {})
    assert observation is not None
    assert (observation.parked, observation.retry_committed) == ({}, {})


def test_observe_a_missing_dlq_topic_gives_none() -> None:
    assert observe(target_of(resource()), {}, {}) is None


def test_first_check_writes_figures_alert_state_and_conditions() -> None:
    first = check({}, figures(3))
    assert first.level is AlertLevel.OK
    assert first.notification is None
    patch = first.status_patch
    assert patch is not None
    assert patch["unresolved"] == 3
    assert patch["alertLevel"] == "OK"
    assert patch["lastCheckedAt"] == "2026-01-01T00:00:00Z"
    assert "lastNotifiedAt" not in patch  # None on both sides: nothing to write
    assert "observedGeneration" not in patch  # the reconciler's, not the monitor's
    assert find_condition(patch, "DepthAlert") == {
        "type": "DepthAlert",
        "status": "False",
        "reason": "DepthOK",
        "message": "DLQ orders.dlq is below its thresholds with 3 unresolved messages "
        "(warning threshold: 10)",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 3,
    }
    known = find_condition(patch, "DepthKnown")
    assert known is not None
    assert (known["status"], known["reason"]) == ("True", "Measured")


def test_an_unchanged_cycle_writes_nothing_until_the_heartbeat() -> None:
    status = checked({}, figures(3))
    for minute in range(1, 10):
        assert check(status, figures(3), minute).status_patch is None
    assert check(status, figures(3), 10).status_patch == {"lastCheckedAt": "2026-01-01T00:10:00Z"}


def test_a_changed_figure_writes_only_what_changed() -> None:
    status = checked({}, figures(3))
    patch = check(status, figures(3, messages=7), 1).status_patch
    assert patch == {"messages": 7, "lastCheckedAt": "2026-01-01T00:01:00Z"}


def test_unknown_inflow_keeps_the_previous_value() -> None:
    status = checked({}, figures(3, inflow_per_minute=2.345))
    assert status["inflowPerMinute"] == 2.35
    assert check(status, figures(3, inflow_per_minute=None), 1).status_patch is None


def test_oldest_unresolved_is_written_as_a_timestamp_and_cleared() -> None:
    oldest = T0 - HOUR
    status = checked(
        {}, figures(3, oldest_unresolved_at=oldest, oldest_unresolved_age_seconds=3600)
    )
    assert status["oldestUnresolvedAt"] == "2025-12-31T23:00:00Z"
    older = figures(3, oldest_unresolved_at=oldest, oldest_unresolved_age_seconds=3660)
    assert check(status, older, 1).status_patch is None
    cleared = check(status, figures(0, messages=3), 1).status_patch
    assert cleared is not None
    assert cleared["oldestUnresolvedAt"] is None


def test_alert_episode_through_status_round_trips() -> None:
    status: dict[str, Any] = {}
    kinds = []
    timeline = [(0, 3), (1, 12), (2, 57), (3, 57), (62, 57), (63, 20), (64, 0), (65, 0)]
    for minute, value in timeline:
        result = check(status, figures(value), minute)
        if result.notification is not None:
            kinds.append((minute, result.notification.kind))
        if minute in (3, 65):
            assert result.status_patch is None
        status = apply(status, result.status_patch)
    assert kinds == [
        (1, NotificationKind.FIRING),
        (2, NotificationKind.FIRING),
        (62, NotificationKind.RENOTIFY),
        (63, NotificationKind.DOWNGRADED),
        (64, NotificationKind.RESOLVED),
    ]
    alert = find_condition(status, "DepthAlert")
    assert alert is not None
    assert (alert["status"], alert["reason"]) == ("False", "DepthOK")
    assert parse_time(alert["lastTransitionTime"]) == T0 + 64 * MINUTE
    assert status["alertLevel"] == "OK"
    assert parse_time(status["lastNotifiedAt"]) == T0 + 64 * MINUTE


def test_the_alert_condition_shows_when_the_episode_began() -> None:
    status = checked(checked({}, figures(12), 0), figures(57), 5)
    alert = find_condition(status, "DepthAlert")
    assert alert is not None
    assert (alert["status"], alert["reason"]) == ("True", "DepthCritical")
    assert alert["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_other_writers_conditions_are_kept() -> None:
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }
    patch = check({"conditions": [ready]}, figures(1)).status_patch
    assert patch is not None
    assert patch["conditions"][0] == ready
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "DepthAlert", "DepthKnown"]


def test_stale_patch_marks_depth_unknown_once() -> None:
    status = checked({}, figures(12))
    patch = stale(status, "KafkaUnavailable", "broker unreachable", 1)
    assert patch is not None
    assert set(patch) == {"conditions"}  # the figures stay as they were
    known = find_condition(patch, "DepthKnown")
    assert known is not None
    assert (known["status"], known["reason"], known["message"]) == (
        "False",
        "KafkaUnavailable",
        "broker unreachable",
    )
    assert known["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    assert find_condition(patch, "DepthAlert") == find_condition(status, "DepthAlert")

    status = apply(status, patch)
    assert stale(status, "KafkaUnavailable", "broker unreachable", 2) is None
    changed = stale(status, "TopicNotFound", "topic orders.dlq does not exist", 3)
    assert changed is not None
    known = find_condition(changed, "DepthKnown")
    assert known is not None
    assert known["lastTransitionTime"] == "2026-01-01T00:01:00Z"  # still False since then


def test_recovery_after_stale_flips_depth_known_back() -> None:
    status = checked({}, figures(12))
    status = apply(status, stale(status, "KafkaUnavailable", "down", 1))
    recovered = check(status, figures(12), 2)
    assert recovered.notification is None
    assert recovered.status_patch is not None
    known = find_condition(recovered.status_patch, "DepthKnown")
    assert known is not None
    assert (known["status"], known["lastTransitionTime"]) == ("True", "2026-01-01T00:02:00Z")


def test_a_threshold_change_updates_observed_generation() -> None:
    changed = resource(checked({}, figures(3)))
    changed["metadata"]["generation"] = 4
    patch = check_dlq(changed, figures(3), now=T0 + MINUTE).status_patch
    assert patch is not None
    assert {c["observedGeneration"] for c in patch["conditions"]} == {4}


def test_thresholds_come_from_the_spec() -> None:
    quiet = resource()
    quiet["spec"]["alerting"] = {"warnThreshold": 100, "criticalThreshold": 200}
    result = check_dlq(quiet, figures(57), now=T0)
    assert result.level is AlertLevel.OK
    assert result.notification is None


def test_the_alert_figure_comes_from_the_spec() -> None:
    on_parked = resource()
    on_parked["spec"]["alerting"] = {
        "warnThreshold": 5,
        "criticalThreshold": 50,
        "metric": "parked",
    }
    result = check_dlq(on_parked, figures(100, parked=7), now=T0)
    assert result.level is AlertLevel.WARNING
    assert result.notification is not None
    assert "7 parked messages" in result.notification.message


def test_alerting_switched_off_never_alerts() -> None:
    silent = resource()
    silent["spec"]["alerting"] = {"enabled": False}
    result = check_dlq(silent, figures(1000), now=T0)
    assert (result.level, result.notification, result.alerting) == (AlertLevel.OK, None, False)


def test_a_paused_dlq_is_measured_but_never_alerts() -> None:
    assert check_dlq(resource(), figures(1000), now=T0).alerting
    paused = resource()
    paused["metadata"]["annotations"] = {"dlq.orion.io/paused": "true"}
    result = check_dlq(paused, figures(1000), now=T0)
    assert (result.level, result.notification, result.alerting) == (AlertLevel.OK, None, False)
    assert result.status_patch is not None and result.status_patch["unresolved"] == 1000

    # Paused while critical: the alert ends as when alerting is switched off.
    critical = checked({}, figures(60))
    assert critical["alertLevel"] == "Critical"
    paused["status"] = critical
    result = check_dlq(paused, figures(60), now=T0 + MINUTE)
    assert result.level is AlertLevel.OK
    assert result.notification is not None
    assert result.notification.kind is NotificationKind.RESOLVED

    paused["metadata"]["annotations"] = {"dlq.orion.io/paused": "false"}
    assert check_dlq(paused, figures(60), now=T0 + 2 * MINUTE).alerting


def test_upsert_condition_replaces_in_place() -> None:
    conditions = [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]
    updated = upsert_condition(conditions, {"type": "A", "status": "False"})
    assert updated == [{"type": "A", "status": "False"}, {"type": "B", "status": "True"}]
    assert upsert_condition(None, {"type": "C"}) == [{"type": "C"}]


# -- quiet checks: skipped while nothing they depend on changes ----------------------------


def quiet_after(status: dict[str, Any], depth: DepthFigures, minute: int, version: str = "7"):
    """The QuietCheck (or None) of checking a DLQ whose status is ``status`` at ``minute``."""
    obj = resource(status)
    obj["metadata"]["resourceVersion"] = version
    result = check_dlq(obj, depth, now=T0 + minute * MINUTE)
    return quiet_check(obj, INPUTS, depth, result), obj


INPUTS = ({0: (0, 4)}, None, None, {})


def test_a_check_that_changed_nothing_covers_the_same_inputs_until_the_heartbeat() -> None:
    status = checked({}, figures(4), minute=0)
    quiet, obj = quiet_after(status, figures(4), minute=1)
    assert quiet is not None
    assert quiet.covers(INPUTS, obj, T0 + 9 * MINUTE)
    assert not quiet.covers(INPUTS, obj, T0 + 10 * MINUTE)  # the heartbeat is due
    assert not quiet.covers(({0: (0, 5)}, None, None, {}), obj, T0 + 2 * MINUTE)
    changed = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "8"}}
    assert not quiet.covers(INPUTS, changed, T0 + 2 * MINUTE)


def test_a_quiet_check_keeps_the_oldest_unresolved_time_for_the_age_metric() -> None:
    depth = figures(4, oldest_unresolved_at=T0)
    status = checked({}, depth, minute=0)
    quiet, _ = quiet_after(status, depth, minute=1)
    assert quiet is not None
    assert quiet.oldest_unresolved_at == T0


def test_checks_that_may_change_with_time_alone_are_never_quiet() -> None:
    assert quiet_after({}, figures(4), minute=0)[0] is None  # it wrote the first figures
    # Each of these checks writes nothing, but a later one with the same inputs would:
    for depth in (
        figures(4, inflow_per_minute=2.0),  # the inflow falls to 0
        figures(20),  # a Warning: a re-notification is due after renotifyInterval
    ):
        status = checked({}, depth, minute=0)
        assert check(status, depth, minute=1).status_patch is None
        assert quiet_after(status, depth, minute=1)[0] is None
