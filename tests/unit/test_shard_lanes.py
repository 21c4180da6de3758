"""The scheduling of concurrent batches of one shard: per-key lanes and the checkpoint watermark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from backend.local.shard_lanes import ShardLanes, Watermark, lane_of


@dataclass
class Rec:
    key: str
    sequence_number: str
    passes: bool = True
    event: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.event = {"dynamodb": {"Keys": {"id": {"S": self.key}}}}


def test_watermark_passes_a_record_only_once_it_and_every_earlier_one_are_done() -> None:
    mark = Watermark()
    mark.take(["1", "2", "3", "4"])
    assert mark.done(["2", "4"]) is None  # 1 is not done: nothing may be checkpointed
    assert mark.outstanding == 4
    assert mark.done(["1"]) == "2"  # 1 and 2 now; 3 still holds 4 back
    assert mark.done(["3"]) == "4"
    assert mark.outstanding == 0


def test_one_key_always_goes_to_one_lane_and_keys_spread_over_lanes() -> None:
    event = {"dynamodb": {"Keys": {"id": {"S": "abc"}}}}
    assert {lane_of(event, 4) for _ in range(5)} == {lane_of(event, 4)}
    lanes = {lane_of({"dynamodb": {"Keys": {"id": {"S": f"k{i}"}}}}, 4) for i in range(64)}
    assert lanes == {0, 1, 2, 3}


def test_one_batch_in_flight_per_lane_and_a_key_keeps_stream_order() -> None:
    lanes: ShardLanes[Rec] = ShardLanes(factor=3, batch_size=2)
    records = [Rec("same", "1"), Rec("same", "2"), Rec("same", "3")]
    lanes.add(records)
    ((lane, first),) = lanes.next_batches()
    assert [r.sequence_number for r in first] == ["1", "2"]
    assert lanes.next_batches() == []  # the lane is busy: its next records wait, in order
    assert lanes.done(first) == "2"
    lanes.release(lane)
    ((_, second),) = lanes.next_batches()
    assert [r.sequence_number for r in second] == ["3"]
    assert lanes.in_flight == 1 and lanes.queued == 0


def test_a_slow_lane_holds_the_checkpoint_but_not_the_other_lanes() -> None:
    factor = 4
    keys = {lane_of(Rec(f"k{i}", "0").event, factor): f"k{i}" for i in range(64)}
    slow_key, other_key = keys[0], keys[1]
    lanes: ShardLanes[Rec] = ShardLanes(factor=factor, batch_size=1)
    lanes.add([Rec(slow_key, "1"), Rec(other_key, "2"), Rec(other_key, "3")])
    started = dict(lanes.next_batches())
    assert set(started) == {0, 1}
    assert lanes.done(started[1]) is None  # 2 is done, but 1 (slow) is not: no checkpoint
    lanes.release(1)
    ((_, third),) = lanes.next_batches()  # the other lane goes on meanwhile
    assert lanes.done(third) is None
    assert lanes.done(started[0]) == "3"
    assert lanes.all_done()


def test_filtered_records_are_done_at_once_and_never_batched() -> None:
    lanes: ShardLanes[Rec] = ShardLanes(factor=2, batch_size=10)
    assert lanes.add([Rec("a", "1", passes=False), Rec("b", "2", passes=False)]) == "2"
    assert lanes.next_batches() == [] and lanes.all_done()


def test_a_shard_needs_a_lane() -> None:
    with pytest.raises(ValueError, match="at least one lane"):
        ShardLanes(factor=0, batch_size=1)
