"""When the trigger twin reads a shard again while its lanes work (ParallelizationFactor above 1): only
when a lane may soon run dry, so a queued backlog is not polled at every batch's end; never past the
read-ahead bound."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.local.lane_delivery import LaneDelivery
from backend.local.shard_lanes import ShardLanes
from backend.local.shards import StreamRecord

FACTOR, BATCH, READ_AHEAD = 4, 10, 1000


def record(number: int, passes: bool = True) -> StreamRecord:
    event = {"dynamodb": {"Keys": {"id": {"S": f"r{number}"}}, "SequenceNumber": str(number)}}
    return StreamRecord(event, str(number), 0.0, passes)


@pytest.fixture
def delivery() -> Iterator[LaneDelivery]:
    lanes = LaneDelivery(FACTOR, BATCH, lambda shard, batch: len(batch), lambda shard, mark: None)
    yield lanes
    lanes.close()


def queued(count: int, passes: bool = True) -> ShardLanes[StreamRecord]:
    lanes: ShardLanes[StreamRecord] = ShardLanes(FACTOR, BATCH)
    lanes.add([record(n, passes) for n in range(1, count + 1)])
    return lanes


def test_reads_while_the_lanes_hold_less_than_a_batch_each(delivery: LaneDelivery) -> None:
    assert delivery.wants_records(queued(0), [], READ_AHEAD)
    assert delivery.wants_records(queued(FACTOR * BATCH - 1), [], READ_AHEAD)


def test_no_read_while_every_lane_can_start_a_full_batch(delivery: LaneDelivery) -> None:
    assert not delivery.wants_records(queued(FACTOR * BATCH), [], READ_AHEAD)
    buffered = [record(n) for n in range(1000, 1010)]  # read, waiting for the batching window
    assert not delivery.wants_records(queued(FACTOR * BATCH - 5), buffered, READ_AHEAD)


def test_filtered_records_do_not_stop_reading(delivery: LaneDelivery) -> None:
    # The function's own updates, dropped by the filters: nothing for the lanes, so keep reading.
    assert delivery.wants_records(queued(300, passes=False), [], READ_AHEAD)
    assert delivery.wants_records(queued(0), [record(n, passes=False) for n in range(500)], READ_AHEAD)


def test_never_reads_past_the_read_ahead_bound(delivery: LaneDelivery) -> None:
    held = [record(n, passes=False) for n in range(READ_AHEAD)]
    assert not delivery.wants_records(queued(0), held, READ_AHEAD)
