"""Pure helpers for ``status.conditions``: lists of condition dicts, as the API server holds them.

A condition's ``lastTransitionTime`` answers "since when?": it moves only when ``status``
flips, never when only the reason or message change.

Every kind carries ``Ready`` and the two "abnormal-true" conditions of the kstatus
conventions (``sigs.k8s.io/cli-utils/pkg/kstatus``), which Flux, kpt and ``kubectl wait``
read to decide whether an applied object is healthy: ``Reconciling=True`` while work is
under way or a dependency is still coming, ``Stalled=True`` when only a person can help.
:func:`set_state` writes the three together, so they never contradict each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from dlq_operator.api.common import Condition, ConditionStatus

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
# A DeadLetterQueue's parts, each with a condition of its own.
TOPIC_READY = "TopicReady"
WORKER_READY = "WorkerReady"


class State(Enum):
    """Where an object stands, as ``Ready``, ``Reconciling`` and ``Stalled`` tell it."""

    READY = "ready"  # the object is what its spec asks for
    RECONCILING = "reconciling"  # not yet: work under way, or waiting for a dependency
    STALLED = "stalled"  # not without a person: the message names the fix


def get_condition(conditions: Sequence[Mapping[str, Any]], type: str) -> dict[str, Any] | None:
    """A copy of the condition of ``type``, or None."""
    for condition in conditions:
        if condition.get("type") == type:
            return dict(condition)
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type: str,
    status: ConditionStatus | str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """``conditions`` with the condition of ``type`` set (replaced in place, or appended).

    The input is not changed. The new condition is validated like the CRD would, so a bad
    reason fails here rather than as a rejected status patch.
    """
    previous = get_condition(conditions, type)
    kept_since = (
        previous.get("lastTransitionTime")
        if previous and previous.get("status") == status
        else None
    )
    condition = Condition(
        type=type,
        status=ConditionStatus(status),
        reason=reason,
        message=message,
        # Whole seconds, as metav1.Condition (and kubectl) show them.
        last_transition_time=kept_since or now.replace(microsecond=0),
        observed_generation=generation,
    ).model_dump(mode="json", exclude_none=True)
    if previous is None:
        return [*map(dict, conditions), condition]
    return [condition if item.get("type") == type else dict(item) for item in conditions]


def set_state(
    conditions: Sequence[Mapping[str, Any]],
    state: State,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """``conditions`` with ``Ready``, ``Reconciling`` and ``Stalled`` set for ``state``; the
    three share the reason and message, which say why the object is where it is."""
    result = [dict(condition) for condition in conditions]
    for type_, true_in in (
        (READY, State.READY),
        (RECONCILING, State.RECONCILING),
        (STALLED, State.STALLED),
    ):
        status = "True" if state is true_in else "False"
        result = set_condition(result, type_, status, reason, message, generation, now)
    return result
