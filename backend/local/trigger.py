"""The trigger twin's poll loop: a local stand-in for Lambda's DynamoDB stream event source mapping.

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
* checkpoints are durable (``Settings.checkpoint_path``; a mapping other than the processor's keeps its
  files apart, see :mod:`backend.local.trigger_files`): a restart neither loses records nor re-delivers
  a checkpointed one (delivery is at least once, as on AWS);
* the dashboard reads ``Settings.trigger_state_path`` (see :mod:`backend.trigger_state`).

With ParallelizationFactor above 1, a shard's records are spread over that many lanes by partition key
(:mod:`backend.local.shard_lanes`): one batch in flight per lane, lanes concurrently, one item's records
always in one lane and in order, and the checkpoint a watermark that passes a record only once every record
before it is done. Retries, bisection and record age work per batch as with factor 1.

Deliberate differences from AWS: with factor 1, shards are processed one after another by one thread (a
shard in backoff delays the others); see docs/trigger-parallelism.md for the exact semantics.

This module is the outer poll loop. What it drives: ``stream_reading`` (the stream, its shards and their
buffers), ``batch_delivery`` (batches, invocations, retries, bisection, give-ups, checkpoints) and
``trigger_report`` (counts and the state file).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backend.clock import now_ms
from backend.local.batch_delivery import BatchDelivery, Invoke, Stopped
from backend.local.checkpoint import CheckpointStore
from backend.local.esm_config import EsmConfig, load_esm_config
from backend.local.lambda_runtime import LambdaRuntime, new_log_stream_name
from backend.local.local_template import local_template
from backend.local.stream_reading import StreamShards
from backend.local.table_outage import OutageGuard
from backend.local.trigger_files import trigger_files
from backend.local.trigger_report import HEARTBEAT_SECONDS, TriggerReport
from backend.settings import Settings
from backend.template import FUNCTION_ID, Template
from backend.trigger_state import TriggerMode, TriggerState

log = logging.getLogger("streamdesk.trigger")

IDLE_POLL_SECONDS: Final = 0.25  # Lambda polls each shard about four times a second


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
        function_id: str = FUNCTION_ID,
    ) -> None:
        self.settings = settings
        self.esm = esm or load_esm_config(local_template(settings, template), function_id=function_id)
        self.files = trigger_files(settings, self.esm.function.logical_id)
        self._runtime: LambdaRuntime | None = None
        if invoke is None:
            self._runtime = LambdaRuntime(settings, self.esm.function)
            invoke = self._runtime.invoke
        log_stream = self._runtime.log_stream_name if self._runtime else new_log_stream_name()
        probe_config = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
        self._probe: Any = boto3.client("dynamodb", config=probe_config, **settings.boto3_kwargs())
        self._outage = OutageGuard(self._table_answers, self.files.parked)
        checkpoints = CheckpointStore(self.files.checkpoint)
        lock = threading.RLock()  # stats, the state file and checkpoints, shared with lane workers
        stats = TriggerState(
            pid=os.getpid(),
            started_at=now_ms(),
            heartbeat_at=now_ms(),
            mode=TriggerMode.ENABLED if self.esm.enabled else TriggerMode.STOPPED,
            parallelization_factor=self.esm.parallelization_factor,
            batch_size=self.esm.batch_size,
            processor_concurrency=processor_concurrency(self.esm),
        )
        self._reader = StreamShards(settings, self.esm, checkpoints, lock, stats)
        self._report = TriggerReport(
            self.files.state, stats, lock, lambda: list(self._reader.shards.values()), self._outage
        )
        self._delivery = BatchDelivery(
            settings,
            self.esm,
            invoke,
            log_stream,
            self._reader,
            checkpoints,
            lock,
            self._report,
            self._outage,
            self.files.failure_destination,
        )
        self._lanes = self._delivery.lanes
        self._wake = threading.Event()  # never set with factor 1
        if self._lanes is not None:
            self._reader.new_lanes = self._lanes.new_lanes
            self._wake = self._lanes.wake

    # ----------------------------------------------------------------------------------- public API
    @property
    def function_arn(self) -> str:
        return self._delivery.function_arn

    @property
    def stream_arn(self) -> str | None:
        return self._reader.stream_arn

    def poll_once(self) -> int:
        """Deliver every record available now (no batching window); returns records delivered.

        Records re-sent after a failure count again. Retries back off as in :meth:`run`.
        """
        delivered = self._cycle(flush=True)
        self._outage.hand_back(self._delivery.deliver_parked)
        self._write_state(force=True)
        return delivered

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; a batch in flight when it is set is not checkpointed."""
        self._delivery.stop = self._outage.stop = stop
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
                    self._outage.hand_back(self._delivery.deliver_parked)
                except Stopped:
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
            self._report.stats.mode = TriggerMode.STOPPED
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

    # ------------------------------------------------------------------------------------- the cycle
    def _cycle(self, flush: bool) -> int:
        """Read and deliver on every ready shard. ``flush``: read until empty, ignore the window."""
        if not self._reader.discover_if_due(flush):
            return 0
        delivered = 0
        progress = True
        while progress:  # a shard finishing makes its children ready in the same cycle
            progress = False
            for shard in list(self._reader.shards.values()):
                if not self._reader.ready(shard):
                    continue
                now = time.monotonic()
                if flush:
                    while self._reader.read(shard):
                        delivered += self._delivery.deliver(shard, flush=True)
                elif now >= shard.next_poll_at and self._delivery.wants_records(shard):
                    got = self._reader.read(shard)
                    # Drain a backlog without pausing; idle shards are polled four times a second.
                    shard.next_poll_at = now if got else now + IDLE_POLL_SECONDS
                delivered += self._delivery.deliver(shard, flush=flush)
                if shard.end_reached and not shard.buffer and (shard.lanes is None or shard.lanes.all_done()):
                    self._reader.close_shard(shard)
                    progress = True
        return delivered

    def _idle_seconds(self) -> float:
        """How long run() may sleep before a shard is due or a batching window ends."""
        now = time.monotonic()
        wake = now + IDLE_POLL_SECONDS
        window = self.esm.maximum_batching_window_seconds
        for shard in self._reader.shards.values():
            if not self._reader.ready(shard):
                continue
            if self._delivery.wants_records(shard):
                wake = min(wake, shard.next_poll_at)
            if shard.buffer and shard.window_started is not None:
                wake = min(wake, shard.window_started + window)
        return max(0.0, wake - now)

    def _reset(self, error: str) -> None:
        log.warning("trigger error, resuming from the checkpoints: %s", error)
        self._report.stats.last_error = error
        if self._lanes is not None:
            self._lanes.abandon()  # their records are re-read from the checkpoint (never past them)
        self._reader.forget()

    # ------------------------------------------------------------------------------ table outages
    def _table_answers(self) -> bool:
        self._probe.describe_table(TableName=self.settings.table)
        return True

    # ------------------------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The state document the dashboard reads (:class:`backend.trigger_state.TriggerState`)."""
        return self._report.state()

    def _write_state(self, force: bool = False) -> None:
        self._report.write(force)


def processor_concurrency(esm: EsmConfig) -> int | None:
    """Records one invocation processes at once (the function's CONCURRENCY variable), if set."""
    raw = esm.function.environment.get("CONCURRENCY", "")
    return int(raw) if raw.strip().isdigit() else None


def run_trigger(
    settings: Settings, template: Template, stop: threading.Event, function_id: str = FUNCTION_ID
) -> None:
    """Entry point for the local stack's supervisor: run ``function_id``'s mapping until ``stop`` is set."""
    trigger = Trigger(settings, template, function_id=function_id)
    trigger.run(stop)
