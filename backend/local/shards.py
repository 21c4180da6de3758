"""What the trigger twin keeps per shard and per batch being delivered (see backend/local/trigger.py)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from backend.local.shard_lanes import ShardLanes
from backend.trigger_state import ShardProgress

BACKOFF_FIRST_SECONDS: Final = 0.1


@dataclass
class StreamRecord:
    """A stream record read from a shard: the Lambda-shaped event plus what the trigger needs."""

    event: dict[str, Any]
    sequence_number: str
    arrival: float  # epoch seconds (see stream_events.approximate_arrival)
    passes: bool  # the mapping's filters let it through


@dataclass
class Segment:
    """Part of a batch being delivered (bisecting splits a segment in two)."""

    records: list[StreamRecord]
    retries: int = 0
    invocations: int = 0
    backoff: float = BACKOFF_FIRST_SECONDS  # the next retry's delay (halves of a bisected batch inherit it)
    outage_seen: bool = False  # the table was unreachable during this segment's delivery


@dataclass
class Shard:
    shard_id: str
    parent_id: str | None
    checkpoint: str | None  # last sequence number done with
    start: str  # "AFTER" (checkpoint) | "TRIM_HORIZON" | "LATEST", for the first iterator
    done: bool = False  # closed and every record done
    iterator: str | None = None
    last_read: str | None = None  # last sequence number put in the buffer
    end_reached: bool = False
    buffer: deque[StreamRecord] = field(default_factory=deque)
    next_poll_at: float = 0.0  # monotonic
    window_started: float | None = None  # monotonic time the buffer got its first record
    lanes: ShardLanes[StreamRecord] | None = None  # ParallelizationFactor above 1: concurrent batches


def shard_progress(shard: Shard) -> ShardProgress:
    """One shard's entry of the state's ``shardProgress`` (docs/internal-contracts.md)."""
    lanes = shard.lanes
    return ShardProgress(
        shard_id=shard.shard_id,
        parent_shard_id=shard.parent_id,
        checkpoint=shard.checkpoint,
        last_read=shard.last_read,
        closed=shard.done,
        buffered=len(shard.buffer),
        queued=lanes.queued if lanes else 0,
        in_flight_batches=lanes.in_flight if lanes else 0,
        not_checkpointed=(lanes.outstanding if lanes else 0) + len(shard.buffer),
    )
