"""Handlers of ReprocessRequest objects: one daemon per request, until it ends."""

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

    await memo.reprocess.run(body, stopping=operator_stops, deleted=deleted)
