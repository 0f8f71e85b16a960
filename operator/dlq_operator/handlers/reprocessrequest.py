"""Handlers of ReprocessRequest objects: one daemon per request, until it ends, and the
events that wake a request's wait or stop its replay at once."""

from __future__ import annotations

from typing import Any

import kopf
from kopf import DaemonStoppingReason

_OPERATOR_STOPS = DaemonStoppingReason.OPERATOR_EXITING | DaemonStoppingReason.OPERATOR_PAUSING


async def replay(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    """Replays the request's selection; resumes from its checkpoint after a restart."""

    def operator_stops() -> bool:
        return bool(stopped.reason and stopped.reason & _OPERATOR_STOPS)

    def deleted() -> bool:
        return bool(stopped.reason and stopped.reason & DaemonStoppingReason.RESOURCE_DELETED)

    await memo.reprocess.run(
        body, stopping=operator_stops, deleted=deleted, until_stopped=stopped.wait
    )


async def suspended(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    """Stops the request's wait or replay now (its events with ``spec.suspend`` set)."""
    memo.reprocess.request_suspended(namespace, name)


def queue_awaited(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> bool:
    """Whether a ReprocessRequest waits for this DeadLetterQueue: only then do its events
    matter to the replays (and only then does kopf log a line for each)."""
    return bool(memo.reprocess.waits_for(namespace, name))


async def queue_changed(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    """Wakes the requests waiting for this DeadLetterQueue: they look at it again."""
    memo.reprocess.queue_changed(namespace, name)
