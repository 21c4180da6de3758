"""The trigger twin: a local stand-in for Lambda's DynamoDB stream event source mapping.

It reads the table's stream through the DynamoDB Streams API and invokes the function the way the
mapping in ``infra/template.yaml`` would:

* every shard of the table's latest stream, parents before children (a child starts once its parent is
  closed and done), from the checkpoint file, else from the mapping's StartingPosition; each shard is
  polled about four times a second when idle; new shards are found by re-describing the stream;
* records of a shard in order, in batches of up to BatchSize, waiting up to
  MaximumBatchingWindowInSeconds to fill one; records the FilterCriteria reject are dropped (and
  checkpointed) before invocation;
* the outcome as Lambda reads it: an exception is a whole-batch failure; with ReportBatchItemFailures,
  ``batchItemFailures`` checkpoints before the lowest failed record and re-sends from there (an empty or
  null or unknown identifier fails the whole batch); whole-batch failures are bisected when
  BisectBatchOnFunctionError is set (splits are not retries), retried with a short backoff, and given up
  after MaximumRetryAttempts retries or once a record is older than MaximumRecordAgeInSeconds (-1: never).
  A batch given up on goes to the on-failure destination (a JSONL file holding what Lambda would send to
  SQS) and the shard moves on;
* checkpoints are durable (``Settings.checkpoint_path``): a restart neither loses records nor re-delivers
  a checkpointed one (delivery is at least once, as on AWS);
* the dashboard reads ``Settings.trigger_state_path`` (see :mod:`backend.trigger_state`).

With ParallelizationFactor above 1, a shard's records are spread over that many lanes by partition key
(:mod:`backend.local.shard_lanes`): one batch in flight per lane, lanes concurrently, one item's records
always in one lane and in order, and the checkpoint a watermark that passes a record only once every record
before it is done. Retries, bisection and record age work per batch as with factor 1.

Deliberate differences from AWS: with factor 1, shards are processed one after another by one thread (a
shard in backoff delays the others); see docs/trigger-parallelism.md for the exact semantics.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
from backend.local.checkpoint import (
    CheckpointStore,
    ShardCheckpoint,
    append_line_durably,
    atomic_write_json,
)
from backend.local.esm_config import EsmConfig, load_esm_config
from backend.local.event_filter import EventFilter
from backend.local.lambda_runtime import LambdaRuntime, new_context, new_log_stream_name
from backend.local.lambda_runtime import function_arn as lambda_function_arn
from backend.local.lane_delivery import LaneDelivery
from backend.local.local_template import local_template
from backend.local.shard_lanes import ShardLanes
from backend.local.shards import Segment, Shard, StreamRecord, shard_progress
from backend.local.stream_events import approximate_arrival, epoch_seconds, to_lambda_record
from backend.local.table_outage import PARKED_FILE, OutageGuard, OutageStopped
from backend.settings import Settings
from backend.template import Template
from backend.trigger_state import MinuteCounts, TriggerMode, TriggerState

log = logging.getLogger("streamdesk.trigger")

IDLE_POLL_SECONDS: Final = 0.25  # Lambda polls each shard about four times a second
DISCOVER_EVERY_SECONDS: Final = 10.0  # re-describe the stream to find new shards
HEARTBEAT_SECONDS: Final = 1.0
BACKOFF_MAX_SECONDS: Final = 2.0
GET_RECORDS_LIMIT: Final = 1000
PER_MINUTE_KEPT: Final = 60


Invoke = Callable[[dict[str, Any], Any], Any]


class _Stopped(Exception):
    """Raised inside a batch when the trigger is asked to stop (the batch stays uncheckpointed)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Trigger:
    """Polls the table's stream and invokes the function; see the module docstring.

    ``invoke`` replaces the in-process Lambda runtime (tests); ``esm`` replaces the mapping read from
    the template (tests change batch size, filters, handler...). Use :meth:`poll_once` to process what is
    available now, or :meth:`run` to poll until ``stop`` is set.
    """

    def __init__(
        self,
        settings: Settings,
        template: Template,
        invoke: Invoke | None = None,
        esm: EsmConfig | None = None,
    ) -> None:
        self.settings = settings
        self.esm = esm or load_esm_config(local_template(settings, template))
        self._runtime: LambdaRuntime | None = None
        if invoke is None:
            self._runtime = LambdaRuntime(settings, self.esm.function)
            invoke = self._runtime.invoke
        self._invoke_function = invoke
        self._log_stream = self._runtime.log_stream_name if self._runtime else new_log_stream_name()
        self._filter = EventFilter(self.esm.filter_patterns)
        config = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"})
        # Typed loosely: the responses are read as plain dicts, as boto3 returns them.
        self._ddb: Any = boto3.client("dynamodb", config=config, **settings.boto3_kwargs())
        self._streams: Any = boto3.client("dynamodbstreams", config=config, **settings.boto3_kwargs())
        probe_config = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
        self._probe: Any = boto3.client("dynamodb", config=probe_config, **settings.boto3_kwargs())
        self._outage = OutageGuard(self._table_answers, settings.trigger_state_path.parent / PARKED_FILE)
        self._checkpoints = CheckpointStore(settings.checkpoint_path)
        self._stop = threading.Event()
        self._stream_arn: str | None = None
        self._key_names: frozenset[str] | None = None  # the table's primary key attributes
        self._shards: dict[str, Shard] = {}
        self._next_discovery = 0.0
        self._last_state_write = 0.0
        self._lock = threading.RLock()  # stats, the state file and checkpoints, shared with lane workers
        self._lanes: LaneDelivery | None = None
        self._wake = threading.Event()  # never set with factor 1
        if self.esm.parallelization_factor > 1:
            factor, size = self.esm.parallelization_factor, self.esm.batch_size
            self._lanes = LaneDelivery(factor, size, self._process, self._advance)
            self._wake = self._lanes.wake
        self._stats = TriggerState(
            pid=os.getpid(),
            started_at=_now_ms(),
            heartbeat_at=_now_ms(),
            mode=TriggerMode.ENABLED if self.esm.enabled else TriggerMode.STOPPED,
            parallelization_factor=self.esm.parallelization_factor,
            batch_size=self.esm.batch_size,
            processor_concurrency=processor_concurrency(self.esm),
        )
        self._per_minute: dict[int, dict[str, int]] = {}

    # ----------------------------------------------------------------------------------- public API
    @property
    def function_arn(self) -> str:
        return lambda_function_arn(self.esm.function, self.settings.region)

    @property
    def stream_arn(self) -> str | None:
        return self._stream_arn

    def poll_once(self) -> int:
        """Deliver every record available now (no batching window); returns records delivered.

        Records re-sent after a failure count again. Retries back off as in :meth:`run`.
        """
        delivered = self._cycle(flush=True)
        self._outage.hand_back(self._deliver_parked)
        self._write_state(force=True)
        return delivered

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; a batch in flight when it is set is not checkpointed."""
        self._stop = self._outage.stop = stop
        log.info(
            "trigger for table %s: batch size %d, parallelization %d, window %ss, retries %d, "
            "record age %ds, filters %d",
            self.settings.table,
            self.esm.batch_size,
            self.esm.parallelization_factor,
            self.esm.maximum_batching_window_seconds,
            self.esm.maximum_retry_attempts,
            self.esm.maximum_record_age_seconds,
            len(self.esm.filter_patterns),
        )
        self._write_state(force=True)  # the supervisor waits for this process's first state
        try:
            while not stop.is_set():
                if not self.esm.enabled:
                    self._write_state()
                    stop.wait(HEARTBEAT_SECONDS)
                    continue
                try:
                    self._cycle(flush=False)
                    self._outage.hand_back(self._deliver_parked)
                except _Stopped:
                    break
                except (BotoCoreError, ClientError, OSError) as error:
                    # DynamoDB Local restarting, say: start over from the checkpoints after a pause.
                    self._outage.reachable()  # an outage is remembered for the give-ups that follow
                    self._reset(f"{type(error).__name__}: {error}")
                    self._write_state()
                    stop.wait(1.0)
                    continue
                self._write_state()
                # With lanes, a batch ending wakes the loop to start its lane's next batch.
                (self._wake if self._lanes is not None else stop).wait(self._idle_seconds())
                self._wake.clear()
        finally:
            self._stats.mode = TriggerMode.STOPPED
            self._write_state(force=True)
            self.close()

    def close(self) -> None:
        """Wait for batches in flight (a stop ends their retries), and give the process environment back
        (the runtime set the function's variables)."""
        if self._lanes is not None:
            self._lanes.close()
        if self._runtime is not None:
            self._runtime.close()

    def __enter__(self) -> Trigger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ discovery
    def _discover(self) -> None:
        self._next_discovery = time.monotonic() + DISCOVER_EVERY_SECONDS
        table = self._ddb.describe_table(TableName=self.settings.table)["Table"]
        stream_arn = table.get("LatestStreamArn")
        if not stream_arn or not (table.get("StreamSpecification") or {}).get("StreamEnabled"):
            self._stream_arn = None
            self._shards = {}
            self._stats.last_error = f"table {self.settings.table} has no stream enabled"
            return
        self._key_names = frozenset(k["AttributeName"] for k in table.get("KeySchema", []))
        if stream_arn != self._stream_arn:
            log.info("reading stream %s", stream_arn)
            self._stream_arn = stream_arn
            self._shards = {}
            self._stats.stream_arn = stream_arn
        first_start = not self._checkpoints.has_stream(stream_arn)

        described = self._describe_shards(stream_arn)
        listed = {shard["ShardId"] for shard in described}
        for shard in described:
            shard_id = shard["ShardId"]
            if shard_id in self._shards:
                continue
            self._shards[shard_id] = self._new_shard(stream_arn, shard, first_start)
            if self._lanes is not None:
                self._shards[shard_id].lanes = self._lanes.new_lanes()
        for shard_id in [s for s in self._shards if s not in listed]:
            del self._shards[shard_id]  # trimmed from the stream (older than 24 hours)
        with self._lock:  # lane workers save checkpoints meanwhile
            self._checkpoints.forget_shards(stream_arn, keep=listed)
        self._stats.shards = len(self._shards)

    def _describe_shards(self, stream_arn: str) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": stream_arn}
        while True:
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def _new_shard(self, stream_arn: str, described: dict[str, Any], first_start: bool) -> Shard:
        shard_id = described["ShardId"]
        parent = described.get("ParentShardId")
        saved = self._checkpoints.get(stream_arn, shard_id)
        if saved is not None:
            start = "AFTER" if saved.sequence_number else "TRIM_HORIZON"
            return Shard(shard_id, parent, saved.sequence_number, start, done=saved.closed)
        closed = "EndingSequenceNumber" in (described.get("SequenceNumberRange") or {})
        if first_start and self.esm.starting_position == "LATEST":
            # LATEST applies once, when the mapping starts: closed shards hold only older records.
            if closed:
                with self._lock:
                    self._checkpoints.save(stream_arn, shard_id, ShardCheckpoint(None, closed=True))
                return Shard(shard_id, parent, None, "LATEST", done=True)
            return Shard(shard_id, parent, None, "LATEST")
        # Shards that appear later (children, new stream) are read from their beginning, as on AWS.
        return Shard(shard_id, parent, None, "TRIM_HORIZON")

    def _ready(self, shard: Shard) -> bool:
        """A shard may be read once its parent (if the stream still lists it) is closed and done."""
        if shard.done:
            return False
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.done

    # -------------------------------------------------------------------------------------- reading
    def _iterator(self, shard: Shard) -> str:
        assert self._stream_arn is not None
        kwargs: dict[str, Any] = {"StreamArn": self._stream_arn, "ShardId": shard.shard_id}
        position = shard.last_read or shard.checkpoint
        if position:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position)
        else:
            kwargs["ShardIteratorType"] = "LATEST" if shard.start == "LATEST" else "TRIM_HORIZON"
        return str(self._streams.get_shard_iterator(**kwargs)["ShardIterator"])

    def _read(self, shard: Shard) -> int:
        """One GetRecords call into the shard's buffer; returns how many records it brought."""
        if shard.end_reached:
            return 0
        if shard.iterator is None:
            shard.iterator = self._iterator(shard)
        try:
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=GET_RECORDS_LIMIT)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ExpiredIteratorException":
                # Iterators live 15 minutes; take a new one after the last record read.
                shard.iterator = self._iterator(shard)
                response = self._streams.get_records(ShardIterator=shard.iterator, Limit=GET_RECORDS_LIMIT)
            elif code == "TrimmedDataAccessException":
                log.error("shard %s: records past the checkpoint were trimmed; reading on", shard.shard_id)
                shard.last_read = shard.checkpoint = None
                shard.start = "TRIM_HORIZON"
                shard.iterator = self._iterator(shard)
                return 0
            elif code == "ResourceNotFoundException":
                self._next_discovery = 0.0  # the stream went away: look for the table's new one
                return 0
            else:
                raise
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.end_reached = True
        read_at = time.time()
        assert self._stream_arn is not None
        for raw in response.get("Records", []):
            event = to_lambda_record(
                raw, self._stream_arn, region=self.settings.region, key_names=self._key_names
            )
            sequence = str(raw["dynamodb"]["SequenceNumber"])
            record = StreamRecord(
                event, sequence, approximate_arrival(raw, read_at), self._filter.passes(event)
            )
            if not shard.buffer:
                shard.window_started = time.monotonic()
            shard.buffer.append(record)
            shard.last_read = sequence
        return len(response.get("Records", []))

    # ------------------------------------------------------------------------------------- the cycle
    def _cycle(self, flush: bool) -> int:
        """Read and deliver on every ready shard. ``flush``: read until empty, ignore the window."""
        if self._stream_arn is None or time.monotonic() >= self._next_discovery or flush:
            try:
                self._discover()
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                self._stream_arn = None
                self._shards = {}
                self._stats.last_error = f"table {self.settings.table} not found"
                self._next_discovery = time.monotonic() + 1.0
                return 0
        delivered = 0
        progress = True
        while progress:  # a shard finishing makes its children ready in the same cycle
            progress = False
            for shard in list(self._shards.values()):
                if not self._ready(shard):
                    continue
                now = time.monotonic()
                if flush:
                    while self._read(shard):
                        delivered += self._deliver(shard, flush=True)
                elif now >= shard.next_poll_at and self._wants_records(shard):
                    got = self._read(shard)
                    # Drain a backlog without pausing; idle shards are polled four times a second.
                    shard.next_poll_at = now if got else now + IDLE_POLL_SECONDS
                delivered += self._deliver(shard, flush=flush)
                if shard.end_reached and not shard.buffer and (shard.lanes is None or shard.lanes.all_done()):
                    self._close_shard(shard)
                    progress = True
        return delivered

    def _close_shard(self, shard: Shard) -> None:
        assert self._stream_arn is not None
        shard.done = True
        with self._lock:
            self._checkpoints.save(self._stream_arn, shard.shard_id, ShardCheckpoint(shard.checkpoint, True))
        log.info("shard %s closed and done", shard.shard_id)

    def _idle_seconds(self) -> float:
        """How long run() may sleep before a shard is due or a batching window ends."""
        now = time.monotonic()
        wake = now + IDLE_POLL_SECONDS
        window = self.esm.maximum_batching_window_seconds
        for shard in self._shards.values():
            if not self._ready(shard):
                continue
            if self._wants_records(shard):
                wake = min(wake, shard.next_poll_at)
            if shard.buffer and shard.window_started is not None:
                wake = min(wake, shard.window_started + window)
        return max(0.0, wake - now)

    def _reset(self, error: str) -> None:
        log.warning("trigger error, resuming from the checkpoints: %s", error)
        self._stats.last_error = error
        if self._lanes is not None:
            self._lanes.abandon()  # their records are re-read from the checkpoint (never past them)
        self._stream_arn = None
        self._shards = {}

    # ------------------------------------------------------------------------------------- delivery
    def _batch_due(self, shard: Shard, flush: bool) -> bool:
        """The buffer may be delivered: a batch is full, the batching window is over, or flushing."""
        window = self.esm.maximum_batching_window_seconds
        passing = sum(1 for r in shard.buffer if r.passes)
        window_over = shard.window_started is None or time.monotonic() >= shard.window_started + window
        return not passing or flush or window <= 0 or passing >= self.esm.batch_size or window_over

    def _deliver(self, shard: Shard, flush: bool) -> int:
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
            self._stats.filtered_out += filtered
            if batch:
                delivered += self._process(shard, batch)
            self._save_checkpoint(shard, last_taken.sequence_number)
        return delivered

    # ------------------------------------------------------------------- concurrent batches (lanes)
    def _wants_records(self, shard: Shard) -> bool:
        if shard.lanes is None or self._lanes is None:
            return True
        return self._lanes.wants_records(shard.lanes, shard.buffer, GET_RECORDS_LIMIT)

    def _deliver_to_lanes(self, shard: Shard, lanes: ShardLanes[StreamRecord], flush: bool) -> int:
        """Hand the buffer to the lanes once due, start a batch on every idle lane, collect the batches
        that ended (``flush``: until none is in flight)."""
        assert self._lanes is not None
        if shard.buffer and self._batch_due(shard, flush):
            records = list(shard.buffer)
            shard.buffer.clear()
            shard.window_started = None
            with self._lock:
                self._stats.filtered_out += sum(1 for r in records if not r.passes)
            self._lanes.hand_over(shard, lanes, records)
        self._lanes.start(shard, lanes)
        return self._lanes.collect(flush)

    def _records_done(self, shard: Shard, records: list[StreamRecord]) -> None:
        """Records delivered or given up on: checkpoint past them (with lanes, as far as the watermark)."""
        if shard.lanes is None or self._lanes is None:
            self._save_checkpoint(shard, records[-1].sequence_number)
        else:
            self._lanes.records_done(shard, shard.lanes, records)

    def _advance(self, shard: Shard, watermark: str) -> None:
        self._save_checkpoint(shard, watermark)

    def _save_checkpoint(self, shard: Shard, sequence_number: str) -> None:
        """Durable before it returns. The fsync is outside the lock: other lanes may end their batches
        meanwhile, and one file write covers every checkpoint put before it (CheckpointStore.sync)."""
        assert self._stream_arn is not None
        with self._lock:  # the compare-and-put of the shard's checkpoint, one worker at a time
            if shard.checkpoint is not None and int(sequence_number) <= int(shard.checkpoint):
                return
            shard.checkpoint = sequence_number
            checkpoint = ShardCheckpoint(sequence_number, False)
            version = self._checkpoints.put(self._stream_arn, shard.shard_id, checkpoint)
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
                if self._stop.is_set():
                    raise _Stopped
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

    # ------------------------------------------------------------------- table outages (table_outage)
    def _table_answers(self) -> bool:
        self._probe.describe_table(TableName=self.settings.table)
        return True

    def _outage_waited_out(self, segment: Segment) -> bool:
        try:
            waited = self._outage.waited_out()
        except OutageStopped:
            raise _Stopped from None
        segment.outage_seen = segment.outage_seen or waited
        if waited:
            self._write_state(force=True)
        return waited

    def _deliver_parked(self, events: list[dict[str, Any]]) -> bool:
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
        if self._stop.wait(delay):
            raise _Stopped

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
        self._record_batch(shard, records, outcome, time.monotonic() - started)
        return outcome

    # ------------------------------------------------------------------------------ failure handling
    def _give_up(self, shard: Shard, segment: Segment, condition: str, last: Outcome | None) -> None:
        """Send the segment's description to the on-failure destination and checkpoint past it."""
        assert self._stream_arn is not None
        first, final = segment.records[0], segment.records[-1]
        given_up = GivenUp(
            condition=condition,
            invocations=segment.invocations,
            shard_id=shard.shard_id,
            stream_arn=self._stream_arn,
            first_sequence=first.sequence_number,
            last_sequence=final.sequence_number,
            first_created=self._created(first),
            last_created=self._created(final),
            size=len(segment.records),
        )
        message = failure_message(given_up, last, self.function_arn, time.time())
        with self._lock:
            append_line_durably(self.settings.failure_destination_path, json.dumps(message))
            self._stats.records_sent_to_failure_destination += len(segment.records)
        log.error(
            "shard %s: gave up on %d record(s) %s..%s (%s after %d invocation(s)); see %s",
            shard.shard_id,
            len(segment.records),
            first.sequence_number,
            final.sequence_number,
            condition,
            segment.invocations,
            self.settings.failure_destination_path,
        )
        oldest = min(r.arrival for r in segment.records)
        if segment.outage_seen or self._outage.lived_through_outage(oldest) or not self._outage.reachable():
            self._outage.park([r.event for r in segment.records], condition)
        self._records_done(shard, segment.records)

    @staticmethod
    def _created(record: StreamRecord) -> int:
        raw = record.event["dynamodb"].get("ApproximateCreationDateTime")
        return epoch_seconds(raw) if raw is not None else int(record.arrival)

    # ----------------------------------------------------------------------------- state and stats
    def _record_batch(
        self, shard: Shard, records: list[StreamRecord], outcome: Outcome, seconds: float
    ) -> None:
        with self._lock:  # lane workers report batches concurrently
            self._count_batch(shard, records, outcome, seconds)
            self._write_state(force=True)

    def _count_batch(
        self, shard: Shard, records: list[StreamRecord], outcome: Outcome, seconds: float
    ) -> None:
        now = time.time()
        iterator_age_ms = max(0, int((now - records[-1].arrival) * 1000))
        stats = self._stats
        stats.batches += 1
        stats.records += len(records)
        stats.last_batch_at = int(now * 1000)
        stats.last_batch_size = len(records)
        stats.last_batch_result = outcome.result
        stats.iterator_age_ms = iterator_age_ms
        if outcome.result == RESULT_FUNCTION_ERROR:
            stats.function_errors += 1
            stats.last_error = outcome.error
        minute = int(now // 60) * 60_000
        bucket = self._per_minute.setdefault(minute, {"batches": 0, "records": 0, "errors": 0})
        bucket["batches"] += 1
        bucket["records"] += len(records)
        if outcome.result != RESULT_OK:
            bucket["errors"] += 1
        for old in sorted(self._per_minute)[:-PER_MINUTE_KEPT]:
            del self._per_minute[old]
        log.info(
            "batch shard=%s size=%d result=%s iterator_age_ms=%d duration_ms=%d%s",
            shard.shard_id,
            len(records),
            outcome.result,
            iterator_age_ms,
            int(seconds * 1000),
            f" error={outcome.error}" if outcome.error else "",
        )

    def state(self) -> dict[str, Any]:
        """The state document the dashboard reads (:class:`backend.trigger_state.TriggerState`)."""
        with self._lock:
            per_minute = [
                MinuteCounts(minute, **counts) for minute, counts in sorted(self._per_minute.items())
            ]
            progress = [shard_progress(shard) for shard in list(self._shards.values())]
            return replace(
                self._stats,
                heartbeat_at=_now_ms(),
                per_minute=per_minute,
                in_flight_batches=sum(p.in_flight_batches for p in progress),
                shard_progress=progress,
                **self._outage.stats(),
            ).to_json()

    def _write_state(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_state_write < HEARTBEAT_SECONDS:
                return
            self._last_state_write = now
            # Not fsynced: it is a view for the dashboard, rewritten every second.
            atomic_write_json(self.settings.trigger_state_path, self.state(), durable=False)


def processor_concurrency(esm: EsmConfig) -> int | None:
    """Records one invocation processes at once (the function's CONCURRENCY variable), if set."""
    raw = esm.function.environment.get("CONCURRENCY", "")
    return int(raw) if raw.strip().isdigit() else None


def run_trigger(settings: Settings, template: Template, stop: threading.Event) -> None:
    """Entry point for the local stack's supervisor: poll the table's stream until ``stop`` is set."""
    trigger = Trigger(settings, template)
    trigger.run(stop)
