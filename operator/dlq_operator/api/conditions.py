"""Status conditions: their types and reasons as API constants, and pure helpers for the
lists of condition dicts the API server holds (``status.conditions``).

Types and reasons are named here once, as cert-manager does in ``pkg/apis/.../types.go``:
planners and handlers return these constants, never string literals, so a reader finds every
reason a condition can carry in one screen.

A condition's ``lastTransitionTime`` answers "since when?": it moves only when ``status``
flips, never when only the reason or message change. It is written in whole seconds.

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

# -- Types ----------------------------------------------------------------------------------
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
# A DeadLetterQueue's parts, each with a condition of its own.
TOPIC_READY = "TopicReady"
WORKER_READY = "WorkerReady"
# The depth monitor's, on a DeadLetterQueue: whether the figures are current, and whether
# the queue is above a threshold (its lastTransitionTime is when the alert episode began).
DEPTH_KNOWN = "DepthKnown"
DEPTH_ALERT = "DepthAlert"

# -- Reasons --------------------------------------------------------------------------------
# Besides these, a condition may carry the ``reason`` of the error that caused it
# (:mod:`dlq_operator.errors`, e.g. KafkaUnavailable), and a ReprocessRequest's the name
# of its phase (ReprocessPhase: Running, Succeeded, Failed, Cancelled).

# Ready, Reconciling and Stalled of a DeadLetterQueue.
RECONCILED = "Reconciled"
INVALID_SPEC = "InvalidSpec"
# TopicReady: a ready topic carries the condition's own type as its reason, TOPIC_READY.
NOT_SUPPORTED = "NotSupported"
ADOPTION_REQUIRED = "AdoptionRequired"
TOPIC_NOT_GRANTED = "TopicNotGranted"
TOO_MANY_PARTITIONS = "TooManyPartitions"
TOPIC_CONFLICT = "TopicConflict"
# WorkerReady.
AVAILABLE = "Available"
PROGRESSING = "Progressing"
UNAVAILABLE = "Unavailable"
RETRY_DISABLED = "RetryDisabled"
POLICY_NOT_FOUND = "PolicyNotFound"
# Ready of a RetryPolicy.
ACCEPTED = "Accepted"
# Reconciling of a ReprocessRequest that waits for its turn.
WAITING_FOR_DEAD_LETTER_QUEUE = "WaitingForDeadLetterQueue"
WAITING_FOR_TOPIC = "WaitingForTopic"
WAITING_FOR_OTHER_REQUEST = "WaitingForOtherRequest"
# DepthKnown.
MEASURED = "Measured"
# DepthAlert, one per alert level.
DEPTH_OK = "DepthOK"
DEPTH_WARNING = "DepthWarning"
DEPTH_CRITICAL = "DepthCritical"


class State(Enum):
    """Where an object stands, as ``Ready``, ``Reconciling`` and ``Stalled`` tell it."""

    READY = "ready"  # the object is what its spec asks for
    RECONCILING = "reconciling"  # not yet: work under way, or waiting for a dependency
    STALLED = "stalled"  # not without a person: the message names the fix


def get_condition(
    conditions: Sequence[Mapping[str, Any]] | None, type: str
) -> dict[str, Any] | None:
    """A copy of the condition of ``type``, or None."""
    for condition in conditions or ():
        if condition.get("type") == type:
            return dict(condition)
    return None


def upsert_condition(
    conditions: Sequence[Mapping[str, Any]] | None, new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The list with ``new`` in place of the condition of the same type (order kept), or
    appended; the input is not changed."""
    result = [dict(c) for c in conditions or () if c.get("type") != new["type"]]
    for index, condition in enumerate(conditions or ()):
        if condition.get("type") == new["type"]:
            result.insert(index, dict(new))
            return result
    return [*result, dict(new)]


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type: str,
    status: ConditionStatus | str,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """``conditions`` with the condition of ``type`` set (replaced in place, or appended).

    Its ``lastTransitionTime`` stays what it was unless ``status`` flips; then it is ``now``.
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
    return upsert_condition(conditions, condition)


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
