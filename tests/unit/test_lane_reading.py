"""When the trigger twin reads a shard again while its lanes work (ParallelizationFactor above 1): only
when some lane may soon run dry, so a backlog queued in every lane is not polled at every batch's end;
never past the read-ahead bound."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.local.lane_delivery import LaneDelivery
from backend.local.shard_lanes import ShardLanes, lane_of
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


def queued(count: int, passes: bool = True, skip_lane: int | None = None) -> ShardLanes[StreamRecord]:
    """Lanes holding ``count`` records (none in ``skip_lane``)."""
    lanes: ShardLanes[StreamRecord] = ShardLanes(FACTOR, BATCH)
    records = (record(n, passes) for n in range(1, 100 * count + 2))
    chosen = [r for r in records if skip_lane is None or lane_of(r.event, FACTOR) != skip_lane][:count]
    lanes.add(chosen)
    return lanes


def test_reads_while_the_lanes_hold_less_than_a_batch_each(delivery: LaneDelivery) -> None:
    assert delivery.wants_records(queued(0), [], READ_AHEAD)
    assert delivery.wants_records(queued(FACTOR * BATCH - 1), [], READ_AHEAD)


def test_no_read_while_every_lane_can_start_a_full_batch(delivery: LaneDelivery) -> None:
    lanes = queued(300)
    assert lanes.least_queued >= BATCH
    assert not delivery.wants_records(lanes, [], READ_AHEAD)
    buffered = [record(n) for n in range(1000, 1000 + FACTOR * BATCH)]  # read, waiting for the window
    assert not delivery.wants_records(queued(0), buffered, READ_AHEAD)


def test_reads_when_one_lane_may_run_dry_though_the_others_hold_plenty(delivery: LaneDelivery) -> None:
    lanes = queued(300, skip_lane=2)
    assert lanes.queued == 300 and lanes.least_queued == 0
    assert delivery.wants_records(lanes, [], READ_AHEAD)


def test_filtered_records_do_not_stop_reading(delivery: LaneDelivery) -> None:
    # The function's own updates, dropped by the filters: nothing for the lanes, so keep reading.
    assert delivery.wants_records(queued(300, passes=False), [], READ_AHEAD)
    assert delivery.wants_records(queued(0), [record(n, passes=False) for n in range(500)], READ_AHEAD)


def test_never_reads_past_the_read_ahead_bound(delivery: LaneDelivery) -> None:
    held = [record(n, passes=False) for n in range(READ_AHEAD)]
    assert not delivery.wants_records(queued(0), held, READ_AHEAD)
