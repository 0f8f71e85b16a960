"""Runs one ReprocessRequest to its end, resumable across operator restarts.

The request's status is its memory: the phase, the counters and a checkpoint per partition,
saved after every acknowledged batch. An operator that stops mid-replay leaves the phase
``Running``; the next one resumes from the checkpoint, so at most the batch that was in
flight is sent twice (with the same ``x-dlq-id`` headers).

At most one request per DeadLetterQueue replays at a time (two replays of one queue would
race on its resolved watermarks and surprise whoever reads the target); the others wait
``Pending``. So does a request whose DeadLetterQueue, or its topic, is not there yet:
objects applied together arrive in any order, and the request starts once its queue's
topic is ready. ``spec.suspend`` or deleting the request cancels it between two batches.

Nothing here polls. A waiting request writes its status once per reason and sleeps until
something it waits for may have changed: the request replaying its queue ends, or the
handlers report an event of its DeadLetterQueue (:meth:`ReprocessController.queue_changed`)
or a suspend (:meth:`ReprocessController.request_suspended`); kopf's daemon flag reports
that the operator stops or the request was deleted. The same wake-ups stop a running
replay through its :class:`RequestSignals`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from dlq_operator.api import (
    DEAD_LETTER_QUEUE,
    REPROCESS_REQUEST,
    TERMINAL_PHASES,
    DeadLetterQueueSpec,
    ReprocessPhase,
    ReprocessRequestSpec,
)
from dlq_operator.api.common import format_timestamp
from dlq_operator.api.conditions import (
    TOPIC_READY,
    WAITING_FOR_DEAD_LETTER_QUEUE,
    WAITING_FOR_OTHER_REQUEST,
    WAITING_FOR_TOPIC,
    State,
    get_condition,
    set_state,
)
from dlq_operator.api.naming import resolved_group_name
from dlq_operator.api.reprocessrequest import ReprocessSource, ReprocessTarget
from dlq_operator.errors import DlqError
from dlq_operator.kube import KubeClient
from dlq_operator.reprocess.engine import ReplayOutcome
from dlq_operator.reprocess.metrics import ReprocessMetrics
from dlq_operator.reprocess.progress import Progress
from dlq_operator.reprocess.records import reprocessed_by_request
from dlq_operator.reprocess.runner import replay
from dlq_operator.settings import Settings

# A finished replay as Ready/Reconciling/Stalled tell it. A cancelled one is what its spec
# (suspend) asks for, so it is Ready, reason Cancelled (kstatus: Current); a failed one
# needs a person.
_FINAL_STATES = {
    ReprocessPhase.SUCCEEDED: State.READY,
    ReprocessPhase.FAILED: State.STALLED,
    ReprocessPhase.CANCELLED: State.READY,
}


@dataclass(frozen=True)
class RequestRef:
    namespace: str
    name: str
    uid: str
    generation: int


class RequestSignals:
    """What ends one request's wait or replay early, set from the event loop.

    ``stop`` is set when kopf stops the request's daemon (the operator stops, the request
    was deleted) or the request is suspended. The replay's thread checks it between batches
    and sleeps on it (rate limit, retry pauses), so a set ``stop`` ends those sleeps at once.
    ``changed`` wakes a waiting request to look again at what it waits for.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.changed = asyncio.Event()

    def set_stop(self) -> None:
        self.stop.set()
        self.changed.set()


class ReprocessController:
    """Replays ReprocessRequests; one instance per operator process."""

    def __init__(
        self, kube: KubeClient, settings: Settings, metrics: ReprocessMetrics | None = None
    ) -> None:
        self.kube = kube
        self.settings = settings
        # The operator passes the metrics it serves; without them, a registry nobody reads.
        self.metrics = metrics or ReprocessMetrics(CollectorRegistry())
        self.running: dict[tuple[str, str], str] = {}  # (namespace, DLQ) -> request name
        self._requests: dict[tuple[str, str], RequestSignals] = {}  # (namespace, request)
        self._waiting: dict[tuple[str, str], set[RequestSignals]] = {}  # (namespace, DLQ)

    async def run(
        self,
        body: Mapping[str, Any],
        stopping: Callable[[], bool],
        deleted: Callable[[], bool],
        until_stopped: Callable[[], Awaitable[object]],
    ) -> None:
        """Takes the request from wherever its status says to a terminal phase (or leaves
        it Running when the operator stops). ``until_stopped`` returns once kopf stops the
        request's daemon (its ``stopped.wait``); ``stopping`` and ``deleted`` tell why."""
        meta, status = body["metadata"], body.get("status") or {}
        ref = RequestRef(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=meta.get("generation", 1),
        )
        if status.get("phase") in TERMINAL_PHASES:
            return
        spec = ReprocessRequestSpec.model_validate(body["spec"])

        def suspended() -> bool:
            return bool((body.get("spec") or {}).get("suspend"))

        if suspended():
            await self._finish(
                ref, status, ReprocessPhase.CANCELLED, "suspended before it started", None
            )
            return
        # No await since the check above: a suspend from here on reaches request_suspended.
        signals = self._requests[(ref.namespace, ref.name)] = RequestSignals()
        kopf_stop = asyncio.create_task(_stop_when(until_stopped, signals))
        try:
            queue = spec.dead_letter_queue_ref.name
            dlq = await self._wait_for_turn(
                ref,
                queue=queue,
                status=status,
                signals=signals,
                stopped=lambda: stopping() or deleted(),
                suspended=suspended,
            )
            if dlq is None:
                return
            slot = (ref.namespace, queue)
            self.running[slot] = ref.name
            self.metrics.running.inc()
            try:
                await self._replay(
                    ref,
                    spec=spec,
                    dlq=dlq,
                    status=status,
                    cancel=signals.stop,
                    deleted=deleted,
                    stopping=stopping,
                )
            finally:
                self.metrics.running.dec()
                self.running.pop(slot, None)
                self.queue_changed(*slot)  # the next request's turn
        finally:
            # Also when kopf cancels this task: the replay's thread, left running, stops at
            # its next batch.
            signals.set_stop()
            kopf_stop.cancel()
            if self._requests.get((ref.namespace, ref.name)) is signals:
                del self._requests[(ref.namespace, ref.name)]

    def request_suspended(self, namespace: str, name: str) -> None:
        """``spec.suspend`` is set on request ``name``: its wait or replay stops now."""
        signals = self._requests.get((namespace, name))
        if signals is not None:
            signals.set_stop()

    def waits_for(self, namespace: str, queue: str) -> bool:
        """Whether a request waits for DeadLetterQueue ``queue`` (or for its turn on it)."""
        return bool(self._waiting.get((namespace, queue)))

    def queue_changed(self, namespace: str, queue: str) -> None:
        """Something a request waiting for ``queue`` waits for may have changed: the queue
        or its topic, or which request replays it. Each such request looks again."""
        for signals in self._waiting.get((namespace, queue), ()):
            signals.changed.set()

    async def _wait_for_turn(
        self,
        ref: RequestRef,
        *,
        queue: str,
        status: Mapping[str, Any],
        signals: RequestSignals,
        stopped: Callable[[], bool],
        suspended: Callable[[], bool],
    ) -> Mapping[str, Any] | None:
        """The request's DeadLetterQueue once its topic is ready and no other request
        replays it; None when kopf stopped the request or it was suspended meanwhile.

        The status is written once per reason for waiting. Between two looks the request
        sleeps on ``signals.changed``, which it clears before it looks: whatever changes
        while it looks wakes it again at once.
        """
        slot = (ref.namespace, queue)
        waiting = self._waiting.setdefault(slot, set())
        waiting.add(signals)
        waiting_for = None  # the reason last written
        try:
            while True:
                signals.changed.clear()
                dlq = await asyncio.to_thread(
                    self.kube.get_object, DEAD_LETTER_QUEUE.plural, ref.namespace, queue
                )
                reason, message = _waits_for(dlq, queue, ref.namespace)
                if reason is None and self.running.get(slot, ref.name) != ref.name:
                    reason = WAITING_FOR_OTHER_REQUEST
                    message = (
                        f"ReprocessRequest {self.running[slot]} is replaying {queue}; this one "
                        "waits"
                    )
                if reason is None:
                    return dlq
                if reason != waiting_for:
                    await self._write(
                        ref,
                        status,
                        {"phase": ReprocessPhase.PENDING.value},
                        State.RECONCILING,
                        reason,
                        message,
                    )
                    waiting_for = reason
                await signals.changed.wait()
                if stopped():
                    return None
                if signals.stop.is_set() or suspended():
                    await self._finish(ref, status, ReprocessPhase.CANCELLED, "suspended", None)
                    return None
        finally:
            waiting.discard(signals)
            if not waiting:
                self._waiting.pop(slot, None)

    async def _replay(
        self,
        ref: RequestRef,
        *,
        spec: ReprocessRequestSpec,
        dlq: Mapping[str, Any],
        status: Mapping[str, Any],
        cancel: threading.Event,
        deleted: Callable[[], bool],
        stopping: Callable[[], bool],
    ) -> None:
        dlq_spec = DeadLetterQueueSpec.model_validate(dlq["spec"])
        target = _target(ref.namespace, spec, dlq_spec, self.settings)
        if isinstance(target, str):
            await self._finish(ref, status, ReprocessPhase.FAILED, target, None)
            return
        topic = (
            dlq_spec.parked_topic_name
            if spec.source is ReprocessSource.PARKED
            else dlq_spec.topic_name
        )
        progress = Progress.from_status(status)
        started = status.get("startedAt") or format_timestamp(datetime.now(UTC), whole_seconds=True)
        if progress is None:
            await self._event(
                ref,
                "Normal",
                "ReprocessStarted",
                f"replaying from {topic}" + (" (dry run)" if spec.dry_run else ""),
            )
        await self._write(
            ref,
            status,
            {"phase": ReprocessPhase.RUNNING.value, "startedAt": started},
            State.RECONCILING,
            ReprocessPhase.RUNNING.value,
            f"replaying from {topic}",
        )
        loop = asyncio.get_running_loop()

        def save(saved: Progress) -> None:
            patch = {**saved.to_status(), "phase": ReprocessPhase.RUNNING.value}
            asyncio.run_coroutine_threadsafe(self._patch(ref, patch), loop).result()

        try:
            outcome = await asyncio.to_thread(
                replay,
                self.settings.kafka,
                source_topic=topic,
                selector=spec.selector,
                target=target,
                rate=spec.rate_limit.messages_per_second,
                dry_run=spec.dry_run,
                reprocessed_by=reprocessed_by_request(ref.namespace, ref.name),
                progress=progress,
                checkpointer=_Checkpointer(save),
                cancel=cancel,
                resolved_group=resolved_group_name(ref.namespace, spec.dead_letter_queue_ref.name),
            )
        except DlqError as exc:
            if stopping():
                return  # the operator stops: the next one retries from the checkpoint
            await self._finish(ref, status, ReprocessPhase.FAILED, str(exc), None)
            return
        if outcome.phase is ReprocessPhase.CANCELLED and (stopping() or deleted()):
            return  # not cancelled by a person: resume (or vanish) with the request
        self._count(ref, outcome)
        await self._finish(ref, status, outcome.phase, outcome.message, outcome)

    def _count(self, ref: RequestRef, outcome: ReplayOutcome) -> None:
        progress = outcome.progress
        for result, count in (
            ("replayed", progress.replayed),
            ("skipped", progress.skipped),
            ("failed", progress.failed),
        ):
            self.metrics.replayed.labels(ref.namespace, ref.name, result).inc(count)

    async def _finish(
        self,
        ref: RequestRef,
        status: Mapping[str, Any],
        phase: ReprocessPhase,
        message: str,
        outcome: ReplayOutcome | None,
    ) -> None:
        patch: dict[str, Any] = {
            "phase": phase.value,
            "completedAt": format_timestamp(datetime.now(UTC), whole_seconds=True),
            "message": message,
        }
        if outcome is not None:
            patch |= outcome.progress.to_status()
        state = _FINAL_STATES[phase]
        await self._write(ref, status, patch, state, phase.value, message)
        event_type = "Warning" if state is State.STALLED else "Normal"
        await self._event(ref, event_type, f"Reprocess{phase.value}", message)

    async def _write(
        self,
        ref: RequestRef,
        status: Mapping[str, Any],
        patch: dict[str, Any],
        state: State,
        reason: str,
        message: str,
    ) -> None:
        conditions = set_state(
            status.get("conditions") or [],
            state,
            reason,
            message,
            ref.generation,
            datetime.now(UTC),
        )
        await self._patch(
            ref, {**patch, "observedGeneration": ref.generation, "conditions": conditions}
        )

    async def _patch(self, ref: RequestRef, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.kube.patch_status, REPROCESS_REQUEST.plural, ref.namespace, ref.name, patch
        )

    async def _event(self, ref: RequestRef, type_: str, reason: str, message: str) -> None:
        obj = {
            "apiVersion": REPROCESS_REQUEST.api_version,
            "kind": REPROCESS_REQUEST.kind,
            "metadata": {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid},
        }
        await asyncio.to_thread(self.kube.post_event, obj, type_, reason, message)


def _waits_for(dlq: Mapping[str, Any] | None, name: str, namespace: str) -> tuple[str | None, str]:
    """What keeps a request from replaying its DeadLetterQueue yet: (reason, message), or
    (None, "") when its topic is there to be read."""
    if dlq is None:
        return (
            WAITING_FOR_DEAD_LETTER_QUEUE,
            f"DeadLetterQueue {name} does not exist in {namespace} yet; the replay starts "
            "once it does",
        )
    topic_ready = get_condition((dlq.get("status") or {}).get("conditions") or [], TOPIC_READY)
    if not topic_ready or topic_ready.get("status") != "True":
        why = (topic_ready or {}).get("message") or "not reconciled yet"
        return WAITING_FOR_TOPIC, f"the topic of DeadLetterQueue {name} is not ready: {why}"
    return None, ""


def _target(
    namespace: str, spec: ReprocessRequestSpec, dlq: DeadLetterQueueSpec, settings: Settings
) -> ReprocessTarget | str:
    """Where the replay writes: the DLQ's source topic, or a topic the operator's grants give
    the namespace; else why it may not (replays run with the operator's identity, so a
    request must not be a way into another team's topic)."""
    topic = spec.target.topic or dlq.source_topic
    whose = f", the sourceTopic of DeadLetterQueue {spec.dead_letter_queue_ref.name}"
    refusal = settings.topic_refusal(namespace, "spec.target.topic", topic, dlq.source_topic, whose)
    return refusal if refusal is not None else spec.target.model_copy(update={"topic": topic})


async def _stop_when(
    until_stopped: Callable[[], Awaitable[object]], signals: RequestSignals
) -> None:
    """Sets the request's stop once kopf stops its daemon."""
    await until_stopped()
    signals.set_stop()


class _Checkpointer:
    """Saves progress through a callable (the engine's Checkpointer protocol)."""

    def __init__(self, save: Callable[[Progress], None]) -> None:
        self.save = save
