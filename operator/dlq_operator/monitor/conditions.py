"""Status conditions and timestamps in the Kubernetes format (``metav1.Condition``).

A condition is a dict with ``type``, ``status`` ("True"/"False"/"Unknown"), a CamelCase
``reason``, a human ``message``, ``lastTransitionTime`` and ``observedGeneration``.
``lastTransitionTime`` moves only when ``status`` flips, never when only the reason or
message change: it answers "since when is this true?".

Timestamps are RFC 3339 UTC with second precision ("2026-01-01T00:00:00Z"), as the API
server stores them; everything read back is parsed into timezone-aware datetimes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

Condition = dict[str, Any]


@functools.lru_cache(maxsize=4096)  # a cycle formats the same few moments for every DLQ
def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    """The datetime of an RFC 3339 string; None for anything missing or malformed."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A naive timestamp has no meaning here; the API server always writes UTC.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def find_condition(status: Mapping[str, Any] | None, type_: str) -> Condition | None:
    for condition in (status or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == type_:
            return dict(condition)
    return None


def make_condition(
    type_: str,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int | None,
    transitioned_at: datetime,
) -> Condition:
    condition: Condition = {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(transitioned_at),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def transition_time(previous: Condition | None, status: bool, now: datetime) -> datetime:
    """Keep the previous transition time unless the condition's status flips."""
    if previous is not None and previous.get("status") == ("True" if status else "False"):
        kept = parse_time(previous.get("lastTransitionTime"))
        if kept is not None:
            return kept
    return now


def upsert_condition(conditions: Sequence[Condition] | None, new: Condition) -> list[Condition]:
    """The list with ``new`` in place of the condition of the same type (order kept)."""
    result = [dict(c) for c in conditions or () if c.get("type") != new["type"]]
    for index, condition in enumerate(conditions or ()):
        if condition.get("type") == new["type"]:
            result.insert(index, new)
            return result
    return [*result, new]
