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
* the dashboard reads ``Settings.trigger_state_path`` (see :mod:`backend.trigger_status`).

Deliberate differences from AWS: shards are processed one after another by one thread (a shard in backoff
delays the others), and ParallelizationFactor above 1 is read but processed as 1 (records of a shard stay
in order, which is what the processor relies on).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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
from backend.local.local_template import local_template
from backend.local.stream_events import approximate_arrival, epoch_seconds, to_lambda_record
from backend.local.table_outage import PARKED_FILE, OutageGuard, OutageStopped
from backend.settings import Settings
from backend.template import Template

log = logging.getLogger("streamdesk.trigger")

IDLE_POLL_SECONDS: Final = 0.25  # Lambda polls each shard about four times a second
DISCOVER_EVERY_SECONDS: Final = 10.0  # re-describe the stream to find new shards
HEARTBEAT_SECONDS: Final = 1.0
BACKOFF_FIRST_SECONDS: Final = 0.1
BACKOFF_MAX_SECONDS: Final = 2.0
GET_RECORDS_LIMIT: Final = 1000
PER_MINUTE_KEPT: Final = 60

RESULT_OK: Final = "OK"
RESULT_PARTIAL: Final = "PARTIAL"
RESULT_FUNCTION_ERROR: Final = "FUNCTION_ERROR"
RETRIES_EXHAUSTED: Final = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED: Final = "RecordAgeExceeded"

Invoke = Callable[[dict[str, Any], Any], Any]


class _Stopped(Exception):
    """Raised inside a batch when the trigger is asked to stop (the batch stays uncheckpointed)."""


@dataclass
class _Record:
    """A stream record read from a shard: the Lambda-shaped event plus what the trigger needs."""

    event: dict[str, Any]
    sequence_number: str
    arrival: float  # epoch seconds (see stream_events.approximate_arrival)
    passes: bool  # the mapping's filters let it through


@dataclass
class _Segment:
    """Part of a batch being delivered (bisecting splits a segment in two)."""

    records: list[_Record]
    retries: int = 0
    invocations: int = 0
    outage_seen: bool = False  # the table was unreachable during this segment's delivery


@dataclass
class _Outcome:
    result: str
    failed_index: int | None = None  # PARTIAL: index of the lowest failed record
    error: str | None = None
    function_error: str | None = None  # "Unhandled" when the function raised
    request_id: str = ""


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    checkpoint: str | None  # last sequence number done with
    start: str  # "AFTER" (checkpoint) | "TRIM_HORIZON" | "LATEST", for the first iterator
    done: bool = False  # closed and every record done
    iterator: str | None = None
    last_read: str | None = None  # last sequence number put in the buffer
    end_reached: bool = False
    buffer: deque[_Record] = field(default_factory=deque)
    next_poll_at: float = 0.0  # monotonic
    window_started: float | None = None  # monotonic time the buffer got its first record


def _iso(epoch: float, milliseconds: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self._shards: dict[str, _Shard] = {}
        self._next_discovery = 0.0
        self._last_state_write = 0.0
        self._backoff = BACKOFF_FIRST_SECONDS
        self._stats: dict[str, Any] = {
            "pid": os.getpid(),
            "startedAt": _now_ms(),
            "heartbeatAt": _now_ms(),
            "streamArn": None,
            "state": "Enabled" if self.esm.enabled else "Stopped",
            "lastBatchAt": None,
            "lastBatchSize": 0,
            "lastBatchResult": None,
            "iteratorAgeMs": None,
            "batches": 0,
            "records": 0,
            "filteredOut": 0,
            "functionErrors": 0,
            "recordsSentToFailureDestination": 0,
            "lastError": None,
            "shards": 0,
        }
        self._per_minute: dict[int, dict[str, int]] = {}
        if self.esm.parallelization_factor > 1:
            log.warning(
                "ParallelizationFactor %d: the local trigger processes each shard with factor 1",
                self.esm.parallelization_factor,
            )

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
            "trigger for table %s: batch size %d, window %ss, retries %d, record age %ds, filters %d",
            self.settings.table,
            self.esm.batch_size,
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
                stop.wait(self._idle_seconds())
        finally:
            self._stats["state"] = "Stopped"
            self._write_state(force=True)
            self.close()

    def close(self) -> None:
        """Give the process environment back (the runtime set the function's variables)."""
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
            self._stats["lastError"] = f"table {self.settings.table} has no stream enabled"
            return
        self._key_names = frozenset(k["AttributeName"] for k in table.get("KeySchema", []))
        if stream_arn != self._stream_arn:
            log.info("reading stream %s", stream_arn)
            self._stream_arn = stream_arn
            self._shards = {}
            self._stats["streamArn"] = stream_arn
        first_start = not self._checkpoints.has_stream(stream_arn)

        described = self._describe_shards(stream_arn)
        listed = {shard["ShardId"] for shard in described}
        for shard in described:
            shard_id = shard["ShardId"]
            if shard_id in self._shards:
                continue
            self._shards[shard_id] = self._new_shard(stream_arn, shard, first_start)
        for shard_id in [s for s in self._shards if s not in listed]:
            del self._shards[shard_id]  # trimmed from the stream (older than 24 hours)
        self._checkpoints.forget_shards(stream_arn, keep=listed)
        self._stats["shards"] = len(self._shards)

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

    def _new_shard(self, stream_arn: str, described: dict[str, Any], first_start: bool) -> _Shard:
        shard_id = described["ShardId"]
        parent = described.get("ParentShardId")
        saved = self._checkpoints.get(stream_arn, shard_id)
        if saved is not None:
            start = "AFTER" if saved.sequence_number else "TRIM_HORIZON"
            return _Shard(shard_id, parent, saved.sequence_number, start, done=saved.closed)
        closed = "EndingSequenceNumber" in (described.get("SequenceNumberRange") or {})
        if first_start and self.esm.starting_position == "LATEST":
            # LATEST applies once, when the mapping starts: closed shards hold only older records.
            if closed:
                self._checkpoints.save(stream_arn, shard_id, ShardCheckpoint(None, closed=True))
                return _Shard(shard_id, parent, None, "LATEST", done=True)
            return _Shard(shard_id, parent, None, "LATEST")
        # Shards that appear later (children, new stream) are read from their beginning, as on AWS.
        return _Shard(shard_id, parent, None, "TRIM_HORIZON")

    def _ready(self, shard: _Shard) -> bool:
        """A shard may be read once its parent (if the stream still lists it) is closed and done."""
        if shard.done:
            return False
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.done

    # -------------------------------------------------------------------------------------- reading
    def _iterator(self, shard: _Shard) -> str:
        assert self._stream_arn is not None
        kwargs: dict[str, Any] = {"StreamArn": self._stream_arn, "ShardId": shard.shard_id}
        position = shard.last_read or shard.checkpoint
        if position:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position)
        else:
            kwargs["ShardIteratorType"] = "LATEST" if shard.start == "LATEST" else "TRIM_HORIZON"
        return str(self._streams.get_shard_iterator(**kwargs)["ShardIterator"])

    def _read(self, shard: _Shard) -> int:
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
            record = _Record(event, sequence, approximate_arrival(raw, read_at), self._filter.passes(event))
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
                self._stats["lastError"] = f"table {self.settings.table} not found"
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
                elif now >= shard.next_poll_at:
                    got = self._read(shard)
                    # Drain a backlog without pausing; idle shards are polled four times a second.
                    shard.next_poll_at = now if got else now + IDLE_POLL_SECONDS
                delivered += self._deliver(shard, flush=flush)
                if shard.end_reached and not shard.buffer:
                    self._close_shard(shard)
                    progress = True
        return delivered

    def _close_shard(self, shard: _Shard) -> None:
        assert self._stream_arn is not None
        shard.done = True
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
            wake = min(wake, shard.next_poll_at)
            if shard.buffer and shard.window_started is not None:
                wake = min(wake, shard.window_started + window)
        return max(0.0, wake - now)

    def _reset(self, error: str) -> None:
        log.warning("trigger error, resuming from the checkpoints: %s", error)
        self._stats["lastError"] = error
        self._stream_arn = None
        self._shards = {}

    # ------------------------------------------------------------------------------------- delivery
    def _deliver(self, shard: _Shard, flush: bool) -> int:
        """Deliver the batches the shard's buffer holds (a part batch only once its window is over)."""
        delivered = 0
        window = self.esm.maximum_batching_window_seconds
        while shard.buffer:
            passing = sum(1 for r in shard.buffer if r.passes)
            window_over = shard.window_started is None or time.monotonic() >= shard.window_started + window
            if passing and not (flush or window <= 0 or passing >= self.esm.batch_size or window_over):
                break  # wait for the batch to fill
            batch: list[_Record] = []
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
            self._stats["filteredOut"] += filtered
            if batch:
                delivered += self._process(shard, batch)
            self._save_checkpoint(shard, last_taken.sequence_number)
        return delivered

    def _save_checkpoint(self, shard: _Shard, sequence_number: str) -> None:
        assert self._stream_arn is not None
        if shard.checkpoint is not None and int(sequence_number) <= int(shard.checkpoint):
            return
        shard.checkpoint = sequence_number
        self._checkpoints.save(self._stream_arn, shard.shard_id, ShardCheckpoint(sequence_number, False))

    def _process(self, shard: _Shard, batch: list[_Record]) -> int:
        """Deliver one batch until every record is done (delivered, or given up); returns invocations'
        record count."""
        delivered = 0
        segments: deque[_Segment] = deque([_Segment(batch)])
        while segments:
            segment = segments.popleft()
            last: _Outcome | None = None
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
                    self._save_checkpoint(shard, segment.records[-1].sequence_number)
                    self._backoff = BACKOFF_FIRST_SECONDS
                    break
                if last.result == RESULT_PARTIAL:
                    assert last.failed_index is not None
                    if last.failed_index > 0:
                        done = segment.records[last.failed_index - 1]
                        self._save_checkpoint(shard, done.sequence_number)
                    segment = _Segment(
                        segment.records[last.failed_index :],
                        segment.retries,
                        segment.invocations,
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
                        _Segment(h, segment.retries, segment.invocations, segment.outage_seen)
                        for h in reversed(halves)
                    )
                    log.info("shard %s: bisecting a batch of %d", shard.shard_id, len(segment.records))
                    break
                if self.esm.retries_exhausted(segment.retries):
                    self._give_up(shard, segment, RETRIES_EXHAUSTED, last)
                    break
                segment.retries += 1
                self._sleep_backoff()
        return delivered

    # ------------------------------------------------------------------- table outages (table_outage)
    def _table_answers(self) -> bool:
        self._probe.describe_table(TableName=self.settings.table)
        return True

    def _outage_waited_out(self, segment: _Segment) -> bool:
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
        records = [_Record(e, str(e["dynamodb"]["SequenceNumber"]), time.time(), True) for e in events]
        context = new_context(self.esm.function, self.settings.region, self._log_stream)
        try:
            response = self._invoke_function({"Records": copy.deepcopy(events)}, context)
        except Exception as error:  # stays parked for the next try
            log.warning("parked records: function error %s: %s", type(error).__name__, error)
            return False
        return self._read_response(response, records).result == RESULT_OK

    def _too_old(self, segment: _Segment) -> bool:
        limit = self.esm.maximum_record_age_seconds
        oldest = min(r.arrival for r in segment.records)
        return limit >= 0 and time.time() - oldest > limit

    def _sleep_backoff(self) -> None:
        delay, self._backoff = self._backoff, min(self._backoff * 2, BACKOFF_MAX_SECONDS)
        if self._stop.wait(delay):
            raise _Stopped

    def _invoke(self, shard: _Shard, records: list[_Record]) -> _Outcome:
        """One synchronous invocation with ``records``, and how Lambda reads its outcome."""
        # A fresh copy each time: the function may change the event, Lambda sends new JSON per call.
        event = {"Records": [copy.deepcopy(r.event) for r in records]}
        context = new_context(self.esm.function, self.settings.region, self._log_stream)
        started = time.monotonic()
        try:
            response = self._invoke_function(event, context)
            json.dumps(response)  # Lambda serialises the result; what cannot be is a function error
        except Exception as error:  # the function's failure, never the trigger's
            outcome = _Outcome(
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
            outcome = self._read_response(response, records)
            outcome.request_id = context.aws_request_id
        self._record_batch(shard, records, outcome, time.monotonic() - started)
        return outcome

    def _read_response(self, response: Any, records: list[_Record]) -> _Outcome:
        if not self.esm.report_batch_item_failures or response is None:
            return _Outcome(RESULT_OK)
        if not isinstance(response, dict):
            return _Outcome(RESULT_FUNCTION_ERROR, error=f"invalid batch response {response!r:.200}")
        failures = response.get("batchItemFailures")
        if failures is None or failures == []:
            return _Outcome(RESULT_OK)
        index = {r.sequence_number: i for i, r in enumerate(records)}
        if not isinstance(failures, list):
            return _Outcome(RESULT_FUNCTION_ERROR, error="batchItemFailures is not a list")
        lowest: int | None = None
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in index:
                # Lambda: an empty, null or unknown identifier fails the whole batch.
                return _Outcome(RESULT_FUNCTION_ERROR, error=f"invalid batch item failure {failure!r:.200}")
            lowest = index[identifier] if lowest is None else min(lowest, index[identifier])
        return _Outcome(RESULT_PARTIAL, failed_index=lowest, error=f"{len(failures)} item failure(s)")

    # ------------------------------------------------------------------------------ failure handling
    def _give_up(self, shard: _Shard, segment: _Segment, condition: str, last: _Outcome | None) -> None:
        """Send the segment's description to the on-failure destination and checkpoint past it."""
        assert self._stream_arn is not None
        first, final = segment.records[0], segment.records[-1]
        message = {
            "requestContext": {
                "requestId": last.request_id if last else str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": segment.invocations,
            },
            "responseContext": {
                "statusCode": 200 if last else None,
                "executedVersion": "$LATEST" if last else None,
                "functionError": last.function_error if last else None,
            },
            "version": "1.0",
            "timestamp": _iso(time.time(), milliseconds=True),
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": first.sequence_number,
                "endSequenceNumber": final.sequence_number,
                "approximateArrivalOfFirstRecord": _iso(self._created(first)),
                "approximateArrivalOfLastRecord": _iso(self._created(final)),
                "batchSize": len(segment.records),
                "streamArn": self._stream_arn,
            },
        }
        append_line_durably(self.settings.failure_destination_path, json.dumps(message))
        self._stats["recordsSentToFailureDestination"] += len(segment.records)
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
        self._save_checkpoint(shard, final.sequence_number)
        self._backoff = BACKOFF_FIRST_SECONDS

    @staticmethod
    def _created(record: _Record) -> int:
        raw = record.event["dynamodb"].get("ApproximateCreationDateTime")
        return epoch_seconds(raw) if raw is not None else int(record.arrival)

    # ----------------------------------------------------------------------------- state and stats
    def _record_batch(self, shard: _Shard, records: list[_Record], outcome: _Outcome, seconds: float) -> None:
        now = time.time()
        iterator_age_ms = max(0, int((now - records[-1].arrival) * 1000))
        stats = self._stats
        stats["batches"] += 1
        stats["records"] += len(records)
        stats["lastBatchAt"] = int(now * 1000)
        stats["lastBatchSize"] = len(records)
        stats["lastBatchResult"] = outcome.result
        stats["iteratorAgeMs"] = iterator_age_ms
        if outcome.result == RESULT_FUNCTION_ERROR:
            stats["functionErrors"] += 1
            stats["lastError"] = outcome.error
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
        self._write_state(force=True)

    def state(self) -> dict[str, Any]:
        """The state document the dashboard reads (docs/internal-contracts.md)."""
        per_minute = [{"minute": minute, **counts} for minute, counts in sorted(self._per_minute.items())]
        outage = self._outage.stats()
        return {**self._stats, **outage, "heartbeatAt": _now_ms(), "perMinute": per_minute}

    def _write_state(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_state_write < HEARTBEAT_SECONDS:
            return
        self._last_state_write = now
        # Not fsynced: it is a view for the dashboard, rewritten every second.
        atomic_write_json(self.settings.trigger_state_path, self.state(), durable=False)


def run_trigger(settings: Settings, template: Template, stop: threading.Event) -> None:
    """Entry point for the local stack's supervisor: poll the table's stream until ``stop`` is set."""
    trigger = Trigger(settings, template)
    trigger.run(stop)
