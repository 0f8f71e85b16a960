"""What a RetryPolicy change means: its digest (which DLQs roll) and its observed status.

A policy has nothing of its own to reconcile; the DeadLetterQueues that use it do (their
worker Deployments carry its effective configuration). The policy's status says it was seen
and how many DLQs use it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dlq_operator.api.conditions import ACCEPTED, State, set_state


def policy_digest(spec: Mapping[str, Any]) -> str:
    """A short digest of the spec: a DLQ nudged with it reconciles again once per change."""
    return hashlib.sha256(json.dumps(dict(spec), sort_keys=True).encode()).hexdigest()[:16]


def observed_status(
    status: Mapping[str, Any], used_by: int, generation: int | None
) -> dict[str, Any]:
    """The status fields of a policy the operator has seen, used by ``used_by`` DLQs."""
    return {
        "observedGeneration": generation,
        "usedBy": used_by,
        "conditions": set_state(
            status.get("conditions") or [],
            State.READY,
            ACCEPTED,
            f"used by {used_by} DeadLetterQueue(s)",
            generation,
            datetime.now(UTC),
        ),
    }
