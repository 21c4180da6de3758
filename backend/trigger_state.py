"""The local trigger's state file, typed: one definition for the writer
(``backend.local.trigger_report``) and every reader (the supervisor, the health page, the stuck
diagnosis), the one liveness rule, and the reader of the trigger's on-failure destination.

Light imports only (no boto3): the dashboard reads these files on every refresh. The files and their
shapes are described in docs/internal-contracts.md ("Trigger twin files").

Fields of note: ``iterator_age_ms`` is the age of the last record of the latest batch when it was delivered
(AWS's IteratorAge); ``function_errors`` counts invocations that raised (or returned an invalid batch
response); ``per_minute[].errors`` counts batches whose result was not OK (function errors and partial
batch failures).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from backend.settings import Settings

# The trigger rewrites its state about once a second; silent for longer than this, it is not running.
SILENT_AFTER_MS: Final = 15_000


class TriggerMode(StrEnum):
    ENABLED = "Enabled"
    STOPPED = "Stopped"


@dataclass
class MinuteCounts:
    """What the trigger did in one minute (``minute``: epoch ms of its start)."""

    minute: int
    batches: int = 0
    records: int = 0
    errors: int = 0  # batches whose result was not OK


@dataclass
class ShardProgress:
    """How far the trigger is through one shard: what it read, checkpointed, and holds in flight."""

    shard_id: str
    parent_shard_id: str | None = None
    checkpoint: str | None = None  # the last sequence number every batch before it is done with
    last_read: str | None = None  # the last sequence number read from the stream
    closed: bool = False  # a closed shard read to its end
    buffered: int = 0  # read, not yet handed to a lane
    queued: int = 0  # in lanes, waiting for their lane's batch
    in_flight_batches: int = 0
    not_checkpointed: int = 0  # records read past the checkpoint (buffered, queued or in flight)


_SHARD_JSON_NAMES: Final = {
    "shard_id": "shardId",
    "parent_shard_id": "parentShardId",
    "checkpoint": "checkpoint",
    "last_read": "lastRead",
    "closed": "closed",
    "buffered": "buffered",
    "queued": "queued",
    "in_flight_batches": "inFlightBatches",
    "not_checkpointed": "notCheckpointed",
}

# The state file's JSON names of the fields (the contract of docs/internal-contracts.md).
_JSON_NAMES: Final = {
    "pid": "pid",
    "started_at": "startedAt",
    "heartbeat_at": "heartbeatAt",
    "mode": "state",
    "stream_arn": "streamArn",
    "last_batch_at": "lastBatchAt",
    "last_batch_size": "lastBatchSize",
    "last_batch_result": "lastBatchResult",
    "iterator_age_ms": "iteratorAgeMs",
    "batches": "batches",
    "records": "records",
    "filtered_out": "filteredOut",
    "function_errors": "functionErrors",
    "records_sent_to_failure_destination": "recordsSentToFailureDestination",
    "last_error": "lastError",
    "shards": "shards",
    "per_minute": "perMinute",
    "parallelization_factor": "parallelizationFactor",
    "batch_size": "batchSize",
    "processor_concurrency": "processorConcurrency",
    "in_flight_batches": "inFlightBatches",
    "shard_progress": "shardProgress",
    "table_unreachable_since": "tableUnreachableSince",
    "table_outages_waited": "tableOutagesWaited",
    "table_outage_seconds": "tableOutageSeconds",
    "parked_by_outage": "parkedByOutage",
    "handed_back_after_outage": "handedBackAfterOutage",
}


@dataclass
class TriggerState:
    """What the local trigger reports about itself (mutable: the trigger counts into it as it works)."""

    pid: int
    started_at: int  # epoch ms
    heartbeat_at: int  # epoch ms of the latest write
    mode: TriggerMode = TriggerMode.ENABLED
    stream_arn: str | None = None
    last_batch_at: int | None = None
    last_batch_size: int = 0
    last_batch_result: str | None = None  # "OK" | "PARTIAL" | "FUNCTION_ERROR"
    iterator_age_ms: int | None = None
    batches: int = 0
    records: int = 0
    filtered_out: int = 0
    function_errors: int = 0
    records_sent_to_failure_destination: int = 0
    last_error: str | None = None
    shards: int = 0
    per_minute: list[MinuteCounts] = field(default_factory=list)
    parallelization_factor: int = 1  # concurrent batches per shard (the mapping's ParallelizationFactor)
    batch_size: int = 0
    processor_concurrency: int | None = None  # records one invocation processes at once
    in_flight_batches: int = 0
    shard_progress: list[ShardProgress] = field(default_factory=list)
    # Table outages (backend/local/table_outage.py): waited out instead of spending a batch's retries.
    table_unreachable_since: int | None = None  # epoch ms; set while the trigger waits for the table
    table_outages_waited: int = 0
    table_outage_seconds: float = 0.0
    parked_by_outage: int = 0  # records given up on during an outage, waiting to be handed back
    handed_back_after_outage: int = 0  # parked batches handed back and finished

    def is_alive(self, now_ms: int) -> bool:
        """The one liveness rule: enabled, and heard from within :data:`SILENT_AFTER_MS`."""
        return self.mode is TriggerMode.ENABLED and now_ms - self.heartbeat_at <= SILENT_AFTER_MS

    def to_json(self) -> dict[str, Any]:
        """The state file's document."""
        document = {_JSON_NAMES[f.name]: getattr(self, f.name) for f in fields(self)}
        document[_JSON_NAMES["mode"]] = self.mode.value
        document[_JSON_NAMES["per_minute"]] = [vars(counts) for counts in self.per_minute]
        document[_JSON_NAMES["shard_progress"]] = [
            {_SHARD_JSON_NAMES[name]: value for name, value in vars(progress).items()}
            for progress in self.shard_progress
        ]
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TriggerState:
        """The state of a document; raises ValueError when it is not a trigger's state."""
        values: dict[str, Any] = {name: document.get(json_name) for name, json_name in _JSON_NAMES.items()}
        try:
            values["mode"] = TriggerMode(values["mode"])
            values["per_minute"] = [_minute(entry) for entry in values["per_minute"] or []]
            values["shard_progress"] = [_shard(entry) for entry in values["shard_progress"] or []]
            for name in ("pid", "started_at", "heartbeat_at"):
                values[name] = int(values[name])
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"not a trigger state: {error}") from error
        return cls(**{name: value for name, value in values.items() if value is not None})


def _minute(entry: Mapping[str, Any]) -> MinuteCounts:
    return MinuteCounts(
        **{name: int(entry[name]) for name in MinuteCounts.__dataclass_fields__ if name in entry}
    )


def _shard(entry: Mapping[str, Any]) -> ShardProgress:
    return ShardProgress(
        **{name: entry[json_name] for name, json_name in _SHARD_JSON_NAMES.items() if json_name in entry}
    )


def read_trigger_state(settings: Settings, path: Path | None = None) -> TriggerState | None:
    """The trigger's latest state, or None if it never ran here (or the file cannot be read). ``path``: the
    state file of another mapping's trigger (``backend.local.trigger_files``); the processor's by default."""
    try:
        document = json.loads((path or settings.trigger_state_path).read_text(encoding="utf-8"))
        return TriggerState.from_json(document) if isinstance(document, dict) else None
    except (OSError, ValueError):
        return None


def read_failure_destination(settings: Settings, limit: int = 100) -> list[dict[str, Any]]:
    """The last ``limit`` messages of the on-failure destination, newest first."""
    path = settings.failure_destination_path
    lines: deque[str] = deque(maxlen=max(0, limit))
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    lines.append(line)
    except OSError:
        return []
    messages: list[dict[str, Any]] = []
    for line in reversed(lines):
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash of the machine; the others are intact
        if isinstance(message, dict):
            messages.append(message)
    return messages
