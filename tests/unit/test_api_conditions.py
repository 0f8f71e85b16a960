"""set_condition / get_condition: metav1.Condition semantics on plain dicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from dlq_operator.api import ConditionStatus, get_condition, set_condition
from dlq_operator.api.conditions import RECONCILING, STALLED, State, set_state

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def ready(status: str = "True", reason: str = "Reconciled", now: datetime = T0) -> list[dict]:
    return set_condition([], "Ready", status, reason, "all good", 1, now)


def test_new_condition_is_appended_in_api_server_form() -> None:
    conditions = set_condition(
        [{"type": "Other", "status": "True"}],
        "Ready",
        ConditionStatus.TRUE,
        "Reconciled",
        "ok",
        3,
        T0,
    )
    assert conditions == [
        {"type": "Other", "status": "True"},
        {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": "ok",
            "lastTransitionTime": "2026-01-01T12:00:00Z",
            "observedGeneration": 3,
        },
    ]


def test_same_status_keeps_transition_time_but_updates_the_rest() -> None:
    (updated,) = set_condition(ready(), "Ready", "True", "StillFine", "fine", 2, T1)
    assert updated["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert (updated["reason"], updated["message"], updated["observedGeneration"]) == (
        "StillFine",
        "fine",
        2,
    )


def test_status_change_moves_transition_time() -> None:
    (updated,) = set_condition(ready(), "Ready", "False", "TopicMissing", "no topic", 2, T1)
    assert updated["status"] == "False"
    assert updated["lastTransitionTime"] == "2026-01-01T12:05:00Z"


def test_replaced_in_place_and_input_untouched() -> None:
    original = [
        {"type": "A", "status": "True"},
        *ready(),
        {"type": "B", "status": "False"},
    ]
    snapshot = [dict(item) for item in original]
    updated = set_condition(original, "Ready", "Unknown", "Checking", "", None, T1)
    assert [item["type"] for item in updated] == ["A", "Ready", "B"]
    assert "observedGeneration" not in updated[1]
    assert original == snapshot


def test_now_in_another_timezone_is_written_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    (condition,) = ready(now=datetime(2026, 1, 1, 14, 0, tzinfo=plus_two))
    assert condition["lastTransitionTime"] == "2026-01-01T12:00:00Z"


@pytest.mark.parametrize(
    ("status", "reason"), [("Maybe", "Fine"), ("True", "not camel"), ("True", "")]
)
def test_what_the_crd_would_refuse_is_refused(status: str, reason: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        set_condition([], "Ready", status, reason, "", 1, T0)


def test_get_condition() -> None:
    conditions = ready()
    found = get_condition(conditions, "Ready")
    assert found == conditions[0]
    assert found is not conditions[0]
    assert get_condition(conditions, "Missing") is None


@pytest.mark.parametrize(
    ("state", "ready", "reconciling", "stalled"),
    [
        (State.READY, "True", "False", "False"),
        (State.RECONCILING, "False", "True", "False"),
        (State.STALLED, "False", "False", "True"),
    ],
)
def test_a_state_sets_ready_reconciling_and_stalled_together(
    state: State, ready: str, reconciling: str, stalled: str
) -> None:
    conditions = set_state([{"type": "DepthKnown", "status": "True"}], state, "Why", "so", 4, T0)
    statuses = {c["type"]: c["status"] for c in conditions}
    assert statuses == {
        "DepthKnown": "True",
        "Ready": ready,
        RECONCILING: reconciling,
        STALLED: stalled,
    }
    assert all(c["observedGeneration"] == 4 for c in conditions[1:])
    assert {(c["reason"], c["message"]) for c in conditions[1:]} == {("Why", "so")}


def test_a_new_state_moves_only_the_conditions_that_flip() -> None:
    waiting = set_state([], State.RECONCILING, "PolicyNotFound", "create it", 1, T0)
    ready_now = set_state(waiting, State.READY, "Reconciled", "ok", 1, T1)
    times = {c["type"]: c["lastTransitionTime"] for c in ready_now}
    assert times == {
        "Ready": "2026-01-01T12:05:00Z",
        RECONCILING: "2026-01-01T12:05:00Z",
        STALLED: "2026-01-01T12:00:00Z",  # False before and after
    }
