"""Names of the things the operator derives from a DeadLetterQueue, in one place.

The worker, the monitor and the replay engine must agree on them: the monitor reads the
retry worker's consumer group, and replays commit to the group that marks records resolved.
"""

from __future__ import annotations

from dlq_operator import API_GROUP

PAUSED_ANNOTATION = f"{API_GROUP}/paused"
CONFIG_HASH_ANNOTATION = f"{API_GROUP}/config-hash"
# Touched on a DeadLetterQueue to make the operator reconcile it again (e.g. its policy changed).
RECONCILE_TRIGGER_ANNOTATION = f"{API_GROUP}/reconcile-trigger"


def retry_group_name(namespace: str, name: str) -> str:
    """Consumer group of a DLQ's retry worker."""
    return f"dlq-operator.retry.{namespace}.{name}"


def resolved_group_name(namespace: str, name: str) -> str:
    """Consumer group that only commits: offsets below it were reprocessed or purged."""
    return f"dlq-operator.resolved.{namespace}.{name}"


def worker_deployment_name(name: str) -> str:
    """The retry worker Deployment of a DLQ (in the DLQ's namespace)."""
    return f"{name}-retry-worker"
