"""The trigger twin's reading side: the table's stream and its shards (discovery, parents before children,
where each starts), and reading records into each shard's buffer (iterators, trimmed or expired ones)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from backend.local.checkpoint import CheckpointStore, ShardCheckpoint
from backend.local.esm_config import EsmConfig
from backend.local.event_filter import EventFilter
from backend.local.shard_lanes import ShardLanes
from backend.local.shards import Shard, StreamRecord
from backend.local.stream_events import approximate_arrival, to_lambda_record
from backend.settings import Settings
from backend.trigger_state import TriggerState

log = logging.getLogger("streamdesk.trigger")

DISCOVER_EVERY_SECONDS: Final = 10.0  # re-describe the stream to find new shards
GET_RECORDS_LIMIT: Final = 1000


class StreamShards:
    """The shards of the table's latest stream and what has been read from each.

    ``new_lanes`` (ParallelizationFactor above 1) gives each new shard its lanes.
    """

    def __init__(
        self,
        settings: Settings,
        esm: EsmConfig,
        checkpoints: CheckpointStore,
        lock: threading.RLock,
        stats: TriggerState,
    ) -> None:
        self.settings = settings
        self.esm = esm
        self._checkpoints = checkpoints
        self._lock = lock  # checkpoints are shared with lane workers
        self._stats = stats
        self._filter = EventFilter(esm.filter_patterns)
        config = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"})
        # Typed loosely: the responses are read as plain dicts, as boto3 returns them.
        self._ddb: Any = boto3.client("dynamodb", config=config, **settings.boto3_kwargs())
        self._streams: Any = boto3.client("dynamodbstreams", config=config, **settings.boto3_kwargs())
        self.stream_arn: str | None = None
        self.key_names: frozenset[str] | None = None  # the table's primary key attributes
        self.shards: dict[str, Shard] = {}
        self.next_discovery = 0.0
        self.new_lanes: Callable[[], ShardLanes[StreamRecord]] | None = None

    def discover_if_due(self, flush: bool) -> bool:
        """Re-describe the stream when it is due (always when flushing); False when the table is missing."""
        if self.stream_arn is not None and time.monotonic() < self.next_discovery and not flush:
            return True
        try:
            self._discover()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            self.forget()
            self._stats.last_error = f"table {self.settings.table} not found"
            self.next_discovery = time.monotonic() + 1.0
            return False
        return True

    def forget(self) -> None:
        """Drop the stream and its shards: the next cycle starts over from the checkpoints."""
        self.stream_arn = None
        self.shards = {}

    def _discover(self) -> None:
        self.next_discovery = time.monotonic() + DISCOVER_EVERY_SECONDS
        table = self._ddb.describe_table(TableName=self.settings.table)["Table"]
        stream_arn = table.get("LatestStreamArn")
        if not stream_arn or not (table.get("StreamSpecification") or {}).get("StreamEnabled"):
            self.forget()
            self._stats.last_error = f"table {self.settings.table} has no stream enabled"
            return
        self.key_names = frozenset(k["AttributeName"] for k in table.get("KeySchema", []))
        if stream_arn != self.stream_arn:
            log.info("reading stream %s", stream_arn)
            self.stream_arn = stream_arn
            self.shards = {}
            self._stats.stream_arn = stream_arn
        first_start = not self._checkpoints.has_stream(stream_arn)

        described = self._describe_shards(stream_arn)
        listed = {shard["ShardId"] for shard in described}
        for shard in described:
            shard_id = shard["ShardId"]
            if shard_id in self.shards:
                continue
            self.shards[shard_id] = self._new_shard(stream_arn, shard, first_start)
            if self.new_lanes is not None:
                self.shards[shard_id].lanes = self.new_lanes()
        for shard_id in [s for s in self.shards if s not in listed]:
            del self.shards[shard_id]  # trimmed from the stream (older than 24 hours)
        with self._lock:  # lane workers save checkpoints meanwhile
            self._checkpoints.forget_shards(stream_arn, keep=listed)
        self._stats.shards = len(self.shards)

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

    def ready(self, shard: Shard) -> bool:
        """A shard may be read once its parent (if the stream still lists it) is closed and done."""
        if shard.done:
            return False
        parent = self.shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.done

    # -------------------------------------------------------------------------------------- reading
    def _iterator(self, shard: Shard) -> str:
        assert self.stream_arn is not None
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        position = shard.last_read or shard.checkpoint
        if position:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position)
        else:
            kwargs["ShardIteratorType"] = "LATEST" if shard.start == "LATEST" else "TRIM_HORIZON"
        return str(self._streams.get_shard_iterator(**kwargs)["ShardIterator"])

    def read(self, shard: Shard) -> int:
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
                self.next_discovery = 0.0  # the stream went away: look for the table's new one
                return 0
            else:
                raise
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.end_reached = True
        read_at = time.time()
        assert self.stream_arn is not None
        for raw in response.get("Records", []):
            event = to_lambda_record(
                raw, self.stream_arn, region=self.settings.region, key_names=self.key_names
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

    def close_shard(self, shard: Shard) -> None:
        assert self.stream_arn is not None
        shard.done = True
        with self._lock:
            self._checkpoints.save(self.stream_arn, shard.shard_id, ShardCheckpoint(shard.checkpoint, True))
        log.info("shard %s closed and done", shard.shard_id)
