"""The trigger twin's batch delivery: batches from a shard's buffer (size, batching window, filtered-out
records), one invocation and how Lambda reads its outcome, then what follows: partial batch responses,
retries with backoff, bisection, record age, giving up to the on-failure destination, and checkpoints.
With ParallelizationFactor above 1, batches run on lanes (backend/local/lane_delivery.py)."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from backend.local.batch_outcome import (
    RECORD_AGE_EXCEEDED,
    RESULT_FUNCTION_ERROR,
    RESULT_OK,
    RESULT_PARTIAL,
    RETRIES_EXHAUSTED,
    GivenUp,
    Outcome,
    failure_message,
    read_response,
)
from backend.local.checkpoint import CheckpointStore, ShardCheckpoint, append_line_durably
from backend.local.esm_config import EsmConfig
from backend.local.lambda_runtime import function_arn, new_context
from backend.local.lane_delivery import LaneDelivery
from backend.local.shard_lanes import ShardLanes
from backend.local.shards import Segment, Shard, StreamRecord
from backend.local.stream_events import epoch_seconds
from backend.local.stream_reading import GET_RECORDS_LIMIT, StreamShards
from backend.local.table_outage import OutageGuard, OutageStopped
from backend.local.trigger_report import TriggerReport
from backend.settings import Settings

log = logging.getLogger("streamdesk.trigger")

BACKOFF_MAX_SECONDS: Final = 2.0

Invoke = Callable[[dict[str, Any], Any], Any]


class Stopped(Exception):
    """Raised inside a batch when the trigger is asked to stop (the batch stays uncheckpointed)."""


class BatchDelivery:
    """Delivers the shards' buffered records to the function; ``stop`` ends retries and backoffs."""

    def __init__(
        self,
        settings: Settings,
        esm: EsmConfig,
        invoke: Invoke,
        log_stream: str,
        reader: StreamShards,
        checkpoints: CheckpointStore,
        lock: threading.RLock,
        report: TriggerReport,
        outage: OutageGuard,
        failure_destination: Path | None = None,
    ) -> None:
        self.settings = settings
        self.failure_destination = failure_destination or settings.failure_destination_path
        self.esm = esm
        self._invoke_function = invoke
        self._log_stream = log_stream
        self._reader = reader
        self._checkpoints = checkpoints
        self._lock = lock  # stats, the state file and checkpoints, shared with lane workers
        self._report = report
        self._outage = outage
        self.stop = threading.Event()
        self.lanes: LaneDelivery | None = None
        if esm.parallelization_factor > 1:
            self.lanes = LaneDelivery(
                esm.parallelization_factor, esm.batch_size, self._process, self._advance
            )

    @property
    def function_arn(self) -> str:
        return function_arn(self.esm.function, self.settings.region)

    # ------------------------------------------------------------------------------------- delivery
    def _batch_due(self, shard: Shard, flush: bool) -> bool:
        """The buffer may be delivered: a batch is full, the batching window is over, or flushing."""
        window = self.esm.maximum_batching_window_seconds
        passing = sum(1 for r in shard.buffer if r.passes)
        window_over = shard.window_started is None or time.monotonic() >= shard.window_started + window
        return not passing or flush or window <= 0 or passing >= self.esm.batch_size or window_over

    def deliver(self, shard: Shard, flush: bool) -> int:
        """Deliver the batches the shard's buffer holds (a part batch only once its window is over)."""
        if shard.lanes is not None:
            return self._deliver_to_lanes(shard, shard.lanes, flush)
        delivered = 0
        while shard.buffer:
            if not self._batch_due(shard, flush):
                break  # wait for the batch to fill
            batch: list[StreamRecord] = []
            last_taken = shard.buffer[0]
            filtered = 0
            while shard.buffer and len(batch) < self.esm.batch_size:
                record = shard.buffer.popleft()
                last_taken = record
                if record.passes:
                    batch.append(record)
                else:
                    filtered += 1
            # Filtered-out records that follow the batch are done with it too.
            while shard.buffer and not shard.buffer[0].passes:
                last_taken = shard.buffer.popleft()
                filtered += 1
            shard.window_started = time.monotonic() if shard.buffer else None
            self._report.stats.filtered_out += filtered
            if batch:
                delivered += self._process(shard, batch)
            self._save_checkpoint(shard, last_taken.sequence_number)
        return delivered

    # ------------------------------------------------------------------- concurrent batches (lanes)
    def wants_records(self, shard: Shard) -> bool:
        if shard.lanes is None or self.lanes is None:
            return True
        return self.lanes.wants_records(shard.lanes, shard.buffer, GET_RECORDS_LIMIT)

    def _deliver_to_lanes(self, shard: Shard, lanes: ShardLanes[StreamRecord], flush: bool) -> int:
        """Hand the buffer to the lanes once due, start a batch on every idle lane, collect the batches
        that ended (``flush``: until none is in flight)."""
        assert self.lanes is not None
        if shard.buffer and self._batch_due(shard, flush):
            records = list(shard.buffer)
            shard.buffer.clear()
            shard.window_started = None
            with self._lock:
                self._report.stats.filtered_out += sum(1 for r in records if not r.passes)
            self.lanes.hand_over(shard, lanes, records)
        self.lanes.start(shard, lanes)
        return self.lanes.collect(flush)

    def _records_done(self, shard: Shard, records: list[StreamRecord]) -> None:
        """Records delivered or given up on: checkpoint past them (with lanes, as far as the watermark)."""
        if shard.lanes is None or self.lanes is None:
            self._save_checkpoint(shard, records[-1].sequence_number)
        else:
            self.lanes.records_done(shard, shard.lanes, records)

    def _advance(self, shard: Shard, watermark: str) -> None:
        self._save_checkpoint(shard, watermark)

    def _save_checkpoint(self, shard: Shard, sequence_number: str) -> None:
        """Durable before it returns. The fsync is outside the lock: other lanes may end their batches
        meanwhile, and one file write covers every checkpoint put before it (CheckpointStore.sync)."""
        stream_arn = self._reader.stream_arn
        assert stream_arn is not None
        with self._lock:  # the compare-and-put of the shard's checkpoint, one worker at a time
            if shard.checkpoint is not None and int(sequence_number) <= int(shard.checkpoint):
                return
            shard.checkpoint = sequence_number
            # shard.done: a lane's last watermark may land after the shard was found closed and done.
            checkpoint = ShardCheckpoint(sequence_number, shard.done)
            version = self._checkpoints.put(stream_arn, shard.shard_id, checkpoint)
        self._checkpoints.sync(version)

    def _process(self, shard: Shard, batch: list[StreamRecord]) -> int:
        """Deliver one batch until every record is done (delivered, or given up); returns invocations'
        record count."""
        delivered = 0
        segments: deque[Segment] = deque([Segment(batch)])
        while segments:
            segment = segments.popleft()
            last: Outcome | None = None
            while True:
                if self.stop.is_set():
                    raise Stopped
                if self._too_old(segment):
                    self._give_up(shard, segment, RECORD_AGE_EXCEEDED, last)
                    break
                last = self._invoke(shard, segment.records)
                segment.invocations += 1
                delivered += len(segment.records)
                if last.result == RESULT_OK:
                    self._records_done(shard, segment.records)
                    break
                if last.result == RESULT_PARTIAL:
                    assert last.failed_index is not None
                    if last.failed_index > 0:
                        self._records_done(shard, segment.records[: last.failed_index])
                    segment = Segment(
                        segment.records[last.failed_index :],
                        segment.retries,
                        segment.invocations,
                        segment.backoff,
                        segment.outage_seen,
                    )
                if self._outage_waited_out(segment):
                    continue  # the table was down: not the request's failure, no retry spent
                if (
                    last.result != RESULT_PARTIAL
                    and self.esm.bisect_batch_on_function_error
                    and len(segment.records) > 1
                ):
                    # Splitting is not a retry: both halves keep the segment's retry count.
                    middle = len(segment.records) // 2
                    halves = (segment.records[:middle], segment.records[middle:])
                    segments.extendleft(
                        Segment(h, segment.retries, segment.invocations, segment.backoff, segment.outage_seen)
                        for h in reversed(halves)
                    )
                    log.info("shard %s: bisecting a batch of %d", shard.shard_id, len(segment.records))
                    break
                if self.esm.retries_exhausted(segment.retries):
                    self._give_up(shard, segment, RETRIES_EXHAUSTED, last)
                    break
                segment.retries += 1
                self._sleep_backoff(segment)
        return delivered

    def _outage_waited_out(self, segment: Segment) -> bool:
        try:
            waited = self._outage.waited_out(on_wait=lambda: self._report.write(force=True))
        except OutageStopped:
            raise Stopped from None
        segment.outage_seen = segment.outage_seen or waited
        if waited:
            self._report.write(force=True)
        return waited

    def deliver_parked(self, events: list[dict[str, Any]]) -> bool:
        """Hand parked records back to the function; True when it finished every one."""
        sequences = [str(e["dynamodb"]["SequenceNumber"]) for e in events]
        context = new_context(self.esm.function, self.settings.region, self._log_stream)
        try:
            response = self._invoke_function({"Records": copy.deepcopy(events)}, context)
        except Exception as error:  # stays parked for the next try
            log.warning("parked records: function error %s: %s", type(error).__name__, error)
            return False
        return read_response(response, sequences, self.esm.report_batch_item_failures).result == RESULT_OK

    def _too_old(self, segment: Segment) -> bool:
        limit = self.esm.maximum_record_age_seconds
        oldest = min(r.arrival for r in segment.records)
        return limit >= 0 and time.time() - oldest > limit

    def _sleep_backoff(self, segment: Segment) -> None:
        delay, segment.backoff = segment.backoff, min(segment.backoff * 2, BACKOFF_MAX_SECONDS)
        if self.stop.wait(delay):
            raise Stopped

    def _invoke(self, shard: Shard, records: list[StreamRecord]) -> Outcome:
        """One synchronous invocation with ``records``, and how Lambda reads its outcome."""
        # A fresh copy each time: the function may change the event, Lambda sends new JSON per call.
        event = {"Records": [copy.deepcopy(r.event) for r in records]}
        context = new_context(self.esm.function, self.settings.region, self._log_stream)
        started = time.monotonic()
        try:
            response = self._invoke_function(event, context)
            json.dumps(response)  # Lambda serialises the result; what cannot be is a function error
        except Exception as error:  # the function's failure, never the trigger's
            outcome = Outcome(
                RESULT_FUNCTION_ERROR,
                error=f"{type(error).__name__}: {error}",
                function_error="Unhandled",
                request_id=context.aws_request_id,
            )
            log.warning(
                "shard %s: function error on a batch of %d: %s\n%s",
                shard.shard_id,
                len(records),
                outcome.error,
                traceback.format_exc(limit=8),
            )
        else:
            sequences = [r.sequence_number for r in records]
            outcome = read_response(response, sequences, self.esm.report_batch_item_failures)
            outcome.request_id = context.aws_request_id
        self._report.record_batch(shard, records, outcome, time.monotonic() - started)
        return outcome

    # ------------------------------------------------------------------------------ failure handling
    def _give_up(self, shard: Shard, segment: Segment, condition: str, last: Outcome | None) -> None:
        """Send the segment's description to the on-failure destination and checkpoint past it."""
        stream_arn = self._reader.stream_arn
        assert stream_arn is not None
        first, final = segment.records[0], segment.records[-1]
        given_up = GivenUp(
            condition=condition,
            invocations=segment.invocations,
            shard_id=shard.shard_id,
            stream_arn=stream_arn,
            first_sequence=first.sequence_number,
            last_sequence=final.sequence_number,
            first_created=self._created(first),
            last_created=self._created(final),
            size=len(segment.records),
        )
        message = failure_message(given_up, last, self.function_arn, time.time())
        with self._lock:
            append_line_durably(self.failure_destination, json.dumps(message))
            self._report.stats.records_sent_to_failure_destination += len(segment.records)
        log.error(
            "shard %s: gave up on %d record(s) %s..%s (%s after %d invocation(s)); see %s",
            shard.shard_id,
            len(segment.records),
            first.sequence_number,
            final.sequence_number,
            condition,
            segment.invocations,
            self.failure_destination,
        )
        oldest = min(r.arrival for r in segment.records)
        if segment.outage_seen or self._outage.lived_through_outage(oldest) or not self._outage.reachable():
            self._outage.park([r.event for r in segment.records], condition)
        self._records_done(shard, segment.records)

    @staticmethod
    def _created(record: StreamRecord) -> int:
        raw = record.event["dynamodb"].get("ApproximateCreationDateTime")
        return epoch_seconds(raw) if raw is not None else int(record.arrival)
