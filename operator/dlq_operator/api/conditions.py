"""Pure helpers for ``status.conditions``: lists of condition dicts, as the API server holds them.

A condition's ``lastTransitionTime`` answers "since when?": it moves only when ``status``
flips, never when only the reason or message change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dlq_operator.api.common import Condition, ConditionStatus


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
