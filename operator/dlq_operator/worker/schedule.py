"""The retry worker's memory: dead letters waiting for their due time, and what may be committed.

The worker loop never sleeps on a record. It hands every consumed record to the
schedule, pops the ones that are due, and asks which offset it may commit. Two
structures, both keyed by partition of the one DLQ topic a worker consumes:

- a heap of waiting retries, earliest due first across all partitions, so a record due
  in an hour never holds back one due now behind it;
- per partition, the offsets consumed and not yet *done* (republished or parked, and
  acknowledged by the broker). The committable offset is the lowest one not done, or
  the one after the highest seen once all are done: Kafka's "next offset to read".
  Offsets may have gaps (compaction, transaction markers); only offsets seen count.

A million waiting records must fit in a few hundred MiB, so an entry is one ``bytes``
object: its due time, partition and offset packed in front of an opaque payload (see
:func:`~dlq_operator.envelope.pack_republish`). Big-endian non-negative doubles and
integers order the same as the numbers, so the heap compares these bytes directly.
Consumed offsets are kept in an ``array`` of 8-byte integers.

Memory is bounded per partition: each gets an equal share of ``capacity`` records held
(waiting, in flight, or done behind one that is not). The loop pauses a partition that
:meth:`Schedule.is_full` and resumes it once :meth:`Schedule.has_room`, a quarter of
the share lower, so it does not flap on every record.
"""

from __future__ import annotations

import heapq
import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from typing import NamedTuple

# due time (epoch seconds, 8 bytes), partition (4), offset (8)
_KEY = struct.Struct(">dIQ")
_PARTITION = struct.Struct(">I")
_PARTITION_BYTES = slice(8, 12)
# Dropping the consumed prefix of an offsets array copies the rest; do it rarely.
_COMPACT_AFTER = 4096


class Due(NamedTuple):
    """A waiting retry whose time has come."""

    partition: int
    offset: int
    payload: bytes


class _Partition:
    """Offsets of one partition, in consume order, from the first not done."""

    __slots__ = ("committed", "done", "head", "highest", "offsets")

    def __init__(self) -> None:
        self.offsets = array("q")
        self.head = 0  # offsets[head] is the lowest offset not done
        self.done: set[int] = set()  # done, but behind one that is not
        self.highest: int | None = None
        self.committed: int | None = None

    def held(self) -> int:
        return len(self.offsets) - self.head

    def next_to_commit(self) -> int | None:
        if self.head < len(self.offsets):
            return self.offsets[self.head]
        return None if self.highest is None else self.highest + 1


class Schedule:
    """Waiting retries and commit tracking of one worker; all times are epoch seconds."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._heap: list[bytes] = []
        self._partitions: dict[int, _Partition] = {}

    def assign(self, partitions: Iterable[int]) -> None:
        """Start tracking newly assigned partitions; shares are split among all assigned."""
        for partition in partitions:
            self._partitions.setdefault(partition, _Partition())

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions: their new owner re-reads them from the committed offset."""
        gone = {_PARTITION.pack(p) for p in partitions if self._partitions.pop(p, None) is not None}
        if gone:
            self._heap = [entry for entry in self._heap if entry[_PARTITION_BYTES] not in gone]
            heapq.heapify(self._heap)

    def track(self, partition: int, offset: int) -> bool:
        """Take in a consumed record; ``False`` means skip it.

        Offsets come in consume order. A redelivered one (after a seek) is already tracked
        and must not be handled twice; one of a partition not assigned (revoked while its
        records were in hand) belongs to another worker now.
        """
        state = self._partitions.get(partition)
        if state is None or (state.highest is not None and offset <= state.highest):
            return False
        state.offsets.append(offset)
        state.highest = offset
        return True

    def add(self, partition: int, offset: int, due_at: float, payload: bytes) -> bool:
        """Schedule a tracked record's retry; again after a failed send, too.

        ``False`` (and nothing kept) when the partition was revoked meanwhile.
        """
        if partition not in self._partitions:
            return False
        if due_at != due_at:
            raise ValueError("due_at is NaN")
        # Only non-negative doubles sort as their bytes; -0.0 would sort last.
        key = _KEY.pack(due_at if due_at > 0 else 0.0, partition, offset)
        heapq.heappush(self._heap, key + payload)
        return True

    def pop_due(self, now: float, limit: int) -> list[Due]:
        """Up to ``limit`` retries due at ``now``, earliest first; they leave the schedule."""
        heap = self._heap
        due: list[Due] = []
        while heap and len(due) < limit:
            due_at, partition, offset = _KEY.unpack_from(heap[0])
            if due_at > now:
                break
            due.append(
                Due(partition=partition, offset=offset, payload=heapq.heappop(heap)[_KEY.size :])
            )
        return due

    def mark_done(self, partition: int, offset: int) -> bool:
        """Record that a record was republished or parked and the broker acknowledged it.

        ``False`` for an offset not outstanding: already done, behind the commit point, or
        of a partition revoked since (a late acknowledgement is harmless then).
        """
        state = self._partitions.get(partition)
        if state is None:
            return False
        offsets = state.offsets
        index = bisect_left(offsets, offset, state.head)
        if index == len(offsets) or offsets[index] != offset or offset in state.done:
            return False
        if index > state.head:
            state.done.add(offset)
            return True
        state.head += 1
        while state.head < len(offsets) and offsets[state.head] in state.done:
            state.done.remove(offsets[state.head])
            state.head += 1
        if state.head >= _COMPACT_AFTER and state.head * 2 >= len(offsets):
            del offsets[: state.head]
            state.head = 0
        return True

    def committable(self, partition: int) -> int | None:
        """The offset to commit for ``partition`` if it moved since :meth:`mark_committed`."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        offset = state.next_to_commit()
        if offset is None or (state.committed is not None and offset <= state.committed):
            return None
        return offset

    def committable_offsets(self) -> dict[int, int]:
        """:meth:`committable` of every partition that has something to commit."""
        offsets = {p: self.committable(p) for p in self._partitions}
        return {p: offset for p, offset in offsets.items() if offset is not None}

    def mark_committed(self, partition: int, offset: int) -> None:
        """Record that the broker acknowledged a commit of ``offset``."""
        state = self._partitions.get(partition)
        if state is not None and (state.committed is None or offset > state.committed):
            state.committed = offset

    def is_full(self, partition: int) -> bool:
        """Whether ``partition`` holds its whole share: pause fetching it."""
        state = self._partitions.get(partition)
        return state is not None and state.held() >= self._share()

    def has_room(self, partition: int) -> bool:
        """Whether a paused ``partition`` went down to three quarters of its share: resume it."""
        state = self._partitions.get(partition)
        return state is None or state.held() <= self._share() * 3 // 4

    def next_due_in(self, now: float) -> float | None:
        """Seconds until the earliest retry is due (0 if one is), ``None`` if none waits."""
        if not self._heap:
            return None
        return max(_KEY.unpack_from(self._heap[0])[0] - now, 0.0)

    def lag(self, now: float) -> float:
        """Seconds the most overdue retry is late: how far the worker is behind."""
        if not self._heap:
            return 0.0
        return max(now - _KEY.unpack_from(self._heap[0])[0], 0.0)

    def __len__(self) -> int:
        """Retries waiting (not those in flight)."""
        return len(self._heap)

    def _share(self) -> int:
        return max(self._capacity // max(len(self._partitions), 1), 1)
