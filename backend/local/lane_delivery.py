"""Runs the lanes' batches of the trigger twin's shards on a pool of threads (ParallelizationFactor above
1; see backend/local/shard_lanes.py for the ordering and checkpoint rules, docs/trigger-parallelism.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from backend.local.shard_lanes import ShardLanes
from backend.local.shards import Shard, StreamRecord

Process = Callable[[Shard, list[StreamRecord]], int]  # delivers one batch; returns records delivered
Advance = Callable[[Shard, str], None]  # the shard's watermark moved: checkpoint there


class LaneDelivery:
    """The lane batches in flight over all shards. Called from the trigger's loop, except ``records_done``,
    which the batches call from their threads."""

    def __init__(self, factor: int, batch_size: int, process: Process, advance: Advance) -> None:
        self.factor = factor
        self.batch_size = batch_size
        self._process = process
        self._advance = advance
        self._pool = ThreadPoolExecutor(4 * factor, thread_name_prefix="batch")
        self._in_flight: dict[Future[int], Shard] = {}
        self.wake = threading.Event()  # a batch ended: its lane may start the next one

    def new_lanes(self) -> ShardLanes[StreamRecord]:
        return ShardLanes(self.factor, self.batch_size)

    def read_limit(self, read_ahead: int) -> int:
        """Records a shard may hold read but not started (reading never outruns processing far)."""
        return max(read_ahead, 4 * self.factor * self.batch_size)

    def wants_records(
        self, lanes: ShardLanes[StreamRecord], buffer: Collection[StreamRecord], read_ahead: int
    ) -> bool:
        """Whether reading the shard now would help: some lane holds less than a full batch (it may soon
        run dry) and the read buffer does not hold a batch for every lane, and the read-ahead bound is not
        reached. While every lane has a backlog queued, the stream is not read again at every batch's
        end: those reads would bring mostly the function's own updates (the filters drop them) and load
        the table the batches write to."""
        buffered = sum(1 for record in buffer if record.passes)
        may_run_dry = lanes.least_queued < self.batch_size and buffered < self.factor * self.batch_size
        return may_run_dry and lanes.queued + len(buffer) < self.read_limit(read_ahead)

    def hand_over(self, shard: Shard, lanes: ShardLanes[StreamRecord], records: list[StreamRecord]) -> None:
        watermark = lanes.add(records)
        if watermark is not None:
            self._advance(shard, watermark)

    def records_done(
        self, shard: Shard, lanes: ShardLanes[StreamRecord], records: list[StreamRecord]
    ) -> None:
        watermark = lanes.done(records)
        if watermark is not None:
            self._advance(shard, watermark)

    def start(self, shard: Shard, lanes: ShardLanes[StreamRecord]) -> None:
        """A batch on every idle lane of the shard that has records."""
        for lane, batch in lanes.next_batches():
            self._in_flight[self._pool.submit(self._run, shard, lanes, lane, batch)] = shard

    def collect(self, flush: bool) -> int:
        """Records delivered by the batches that ended; starts their lanes' next batches. ``flush``: until
        no batch is in flight. Re-raises what ended a batch (the trigger's stop, or an error)."""
        delivered = 0
        while self._in_flight:
            ended = [future for future in self._in_flight if future.done()]
            if not ended and not flush:
                break
            if not ended:
                wait(list(self._in_flight), return_when=FIRST_COMPLETED)
                continue
            for future in ended:
                owner = self._in_flight.pop(future)
                delivered += future.result()
                if owner.lanes is not None:
                    self.start(owner, owner.lanes)
        return delivered

    def abandon(self) -> None:
        """Wait for the batches in flight and forget them (the trigger resumes from its checkpoints)."""
        wait(list(self._in_flight))
        self._in_flight.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _run(
        self, shard: Shard, lanes: ShardLanes[StreamRecord], lane: int, batch: list[StreamRecord]
    ) -> int:
        try:
            delivered = self._process(shard, batch)
        except BaseException:
            # Stopping, or an error that resets the trigger: the lane stays busy, so no later record of
            # its keys is delivered before these (the reset re-reads them from the checkpoint).
            self.wake.set()
            raise
        lanes.release(lane)
        self.wake.set()
        return delivered
