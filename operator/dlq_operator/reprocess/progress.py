"""How far a replay got: counters and a checkpoint per partition, kept in status.

The checkpoint holds, per partition, the range the replay was planned to read
(``endOffset``, fixed when it started) and the next offset to look at (``nextOffset``).
The engine moves ``nextOffset`` only after the batch it covers was acknowledged by the
broker, and saves the progress after every such batch. An operator that restarts goes on
from the saved checkpoint: only a batch that was in flight when it stopped is sent
again, and it carries the same ``x-dlq-id`` headers, so consumers can drop the copies.

Counters move together with the checkpoint, so they describe exactly the records below
it: ``matched`` records the selector picked, ``replayed`` those produced (equal to
``matched`` except in a dry run), ``skipped`` records looked at and not replayed.
``failed`` counts the records of a batch that could not be produced; they are not below
the checkpoint, because they were not replayed.

Resolved watermarks
    The depth monitor counts a dead letter as dealt with once it is below the *resolved
    watermark* of its partition: an offset committed in the DLQ's resolved consumer group.
    A watermark says "everything below me is resolved", so a replay may move it only over
    records it actually replayed, all of them, with no gap from the current watermark.
    :meth:`Progress.resolved_watermarks` finds those: per partition, the offsets this run
    replayed without a gap (from where the run started in that partition up to the first
    record it did not replay, or to ``nextOffset``), and the new watermark when that span
    starts at or below the current one. A selective replay (say, one error code) moves the
    watermark only up to the first record it did not pick; a replay that starts above the
    watermark (``fromOffset``) moves it only once the records below were resolved; a dry run
    never moves it. What a span covers is known only to the process that ran it, so after
    a restart the span starts again at the checkpoint. For that not to leave a gap, the
    watermarks must be committed *before* the checkpoint is saved: a crash in between then
    leaves the watermark ahead of the checkpoint, which the next span still reaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dlq_operator.api import PartitionCheckpoint, ReplaySample, ReprocessRequestStatus


@dataclass
class Progress:
    """Counters, checkpoint (by partition) and dry-run samples of one replay."""

    checkpoint: dict[int, PartitionCheckpoint]
    matched: int = 0
    replayed: int = 0
    skipped: int = 0
    failed: int = 0
    samples: list[ReplaySample] = field(default_factory=list)
    # Per partition, where this run started and the first offset it read but did not
    # replay: the span a resolved watermark may move over. Not part of status.
    _span_start: dict[int, int] = field(init=False, repr=False, compare=False)
    _first_unreplayed: dict[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._span_start = {p: cp.next_offset for p, cp in self.checkpoint.items()}
        self._first_unreplayed = {}

    @classmethod
    def start(cls, plan: Mapping[int, tuple[int, int]]) -> Progress:
        """The progress of a replay that has not begun, over ``plan``'s (start, end) ranges."""
        return cls(
            {
                partition: PartitionCheckpoint(
                    partition=partition, next_offset=start, end_offset=end
                )
                for partition, (start, end) in sorted(plan.items())
            }
        )

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> Progress | None:
        """The progress a ReprocessRequest's status saved; ``None`` if it has no checkpoint.

        No checkpoint means the replay was never planned: plan it and :meth:`start` it.
        """
        saved = ReprocessRequestStatus.model_validate(status)
        if saved.checkpoint is None:
            return None
        return cls(
            {cp.partition: cp for cp in sorted(saved.checkpoint, key=lambda cp: cp.partition)},
            matched=saved.matched or 0,
            replayed=saved.replayed or 0,
            skipped=saved.skipped or 0,
            failed=saved.failed or 0,
            samples=list(saved.samples or ()),
        )

    def to_status(self) -> dict[str, Any]:
        """The status fields this progress owns, as JSON for a status patch."""
        status: dict[str, Any] = {
            "matched": self.matched,
            "replayed": self.replayed,
            "skipped": self.skipped,
            "failed": self.failed,
            "checkpoint": [cp.model_dump(mode="json") for cp in self.checkpoint.values()],
        }
        if self.samples:
            status["samples"] = [s.model_dump(mode="json", exclude_none=True) for s in self.samples]
        return status

    def advance(
        self,
        partition: int,
        next_offset: int,
        *,
        matched: int = 0,
        replayed: int = 0,
        skipped: int = 0,
        first_unreplayed: int | None = None,
    ) -> None:
        """Record that everything in ``partition`` below ``next_offset`` was dealt with.

        The counts are those of the records between the previous ``nextOffset`` and this
        one; ``first_unreplayed`` is the lowest offset among them that was read and not
        replayed (skipped, or only counted in a dry run).
        """
        current = self.checkpoint[partition]
        if not current.next_offset <= next_offset <= current.end_offset:
            raise ValueError(
                f"partition {partition}: next offset {next_offset} outside "
                f"{current.next_offset}..{current.end_offset}"
            )
        self.checkpoint[partition] = current.model_copy(update={"next_offset": next_offset})
        self.matched += matched
        self.replayed += replayed
        self.skipped += skipped
        if first_unreplayed is not None:
            self._first_unreplayed.setdefault(partition, first_unreplayed)

    def fail(self, count: int) -> None:
        """Count ``count`` records that could not be produced."""
        self.failed += count

    def done(self, max_messages: int | None = None) -> bool:
        """Whether every partition was read to its end, or ``max_messages`` matched."""
        if max_messages is not None and self.matched >= max_messages:
            return True
        return all(cp.next_offset >= cp.end_offset for cp in self.checkpoint.values())

    def resolved_watermarks(
        self, committed: Mapping[int, int], low: Mapping[int, int]
    ) -> dict[int, int]:
        """Resolved watermarks to commit: only the partitions whose watermark moves.

        ``committed`` is what the DLQ's resolved group holds for the topic replayed from
        (a partition with nothing committed is absent), ``low`` each partition's first
        retained offset: records below it are gone, so they need no resolving.
        """
        moved = {}
        for partition, cp in self.checkpoint.items():
            if partition not in low:
                continue
            watermark = max(committed.get(partition, low[partition]), low[partition])
            reached = min(cp.next_offset, self._first_unreplayed.get(partition, cp.next_offset))
            if self._span_start[partition] <= watermark < reached:
                moved[partition] = reached
        return moved
