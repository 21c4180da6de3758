"""Concurrent batches of one shard, as Lambda runs them with ``ParallelizationFactor`` above 1.

Records of a shard are spread over ``factor`` lanes by a hash of their partition key (the item's key), so
the records of one item always go to the same lane, in stream order. A lane has at most one batch in flight
at a time; different lanes run their batches concurrently. The shard's checkpoint is a watermark: it moves
past a sequence number only once that record and every record before it in the shard is done (delivered,
filtered out, or given up on), whichever lane it went to. A restart therefore re-reads from the oldest
record not yet done: nothing is skipped, and records done after it are sent again (at least once, as on
AWS; the processor's claim protocol makes that harmless).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar


class LaneRecord(Protocol):
    """What the lanes need of a stream record."""

    @property
    def event(self) -> dict[str, Any]: ...

    @property
    def sequence_number(self) -> str: ...

    @property
    def passes(self) -> bool: ...


R = TypeVar("R", bound=LaneRecord)


def lane_of(event: Mapping[str, Any], factor: int) -> int:
    """The lane of a record: a stable hash of its partition key (the item's key attributes)."""
    keys = (event.get("dynamodb") or {}).get("Keys") or {}
    return zlib.crc32(json.dumps(keys, sort_keys=True).encode("utf-8")) % factor


class Watermark:
    """The highest sequence number of a shard such that it and every record taken before it are done."""

    def __init__(self) -> None:
        self._taken: deque[str] = deque()  # in stream order, not yet passed by the watermark
        self._done: set[str] = set()

    def take(self, sequence_numbers: Iterable[str]) -> None:
        self._taken.extend(sequence_numbers)

    def done(self, sequence_numbers: Iterable[str]) -> str | None:
        """Mark records done; the new watermark if it moved, else None."""
        self._done.update(sequence_numbers)
        moved: str | None = None
        while self._taken and self._taken[0] in self._done:
            moved = self._taken.popleft()
            self._done.discard(moved)
        return moved

    @property
    def outstanding(self) -> int:
        """Records taken and not yet passed (in a lane, in flight, or done behind one that is not)."""
        return len(self._taken)


class ShardLanes(Generic[R]):
    """The lanes of one shard: what waits in each, which have a batch in flight, and the watermark.

    Thread-safe: the trigger's loop adds records and starts batches, lane workers report them done.
    """

    def __init__(self, factor: int, batch_size: int) -> None:
        if factor < 1:
            raise ValueError("a shard has at least one lane")
        self.factor = factor
        self.batch_size = batch_size
        self._queues: list[deque[R]] = [deque() for _ in range(factor)]
        self._busy = [False] * factor
        self._watermark = Watermark()
        self._lock = threading.Lock()

    def add(self, records: list[R]) -> str | None:
        """Take records in stream order; those the filters drop are done at once. Returns the watermark
        if that moved it."""
        with self._lock:
            self._watermark.take(r.sequence_number for r in records)
            for record in records:
                if record.passes:
                    self._queues[lane_of(record.event, self.factor)].append(record)
            return self._watermark.done(r.sequence_number for r in records if not r.passes)

    def next_batches(self) -> list[tuple[int, list[R]]]:
        """A batch for every idle lane that has records; those lanes become busy."""
        started: list[tuple[int, list[R]]] = []
        with self._lock:
            for lane, queue in enumerate(self._queues):
                if self._busy[lane] or not queue:
                    continue
                batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
                self._busy[lane] = True
                started.append((lane, batch))
        return started

    def done(self, records: Iterable[R]) -> str | None:
        """Records of a batch are done (delivered or given up on); the watermark if it moved."""
        with self._lock:
            return self._watermark.done(r.sequence_number for r in records)

    def release(self, lane: int) -> None:
        """The lane's batch is over (done, or abandoned when the trigger stops); it may start another."""
        with self._lock:
            self._busy[lane] = False

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(self._busy)

    @property
    def queued(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues)

    @property
    def least_queued(self) -> int:
        """Records waiting in the lane that holds the fewest (the first lane that may run dry)."""
        with self._lock:
            return min(len(q) for q in self._queues)

    @property
    def outstanding(self) -> int:
        with self._lock:
            return self._watermark.outstanding

    def all_done(self) -> bool:
        """Every record taken is done (nothing queued, in flight, or abandoned by a stop)."""
        with self._lock:
            return self._watermark.outstanding == 0
