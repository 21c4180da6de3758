"""Pipeline health for the dashboard's Health page: the trigger, its failure destination, the table.

Locally the trigger twin reports through its files (``trigger/state.json`` and
``trigger/failure-destination.jsonl``, read by :mod:`backend.trigger_state`); on AWS the event source
mapping, CloudWatch and the on-failure queue tell the same (:mod:`backend.deployed.health`).

A failure-destination message holds no records, only a shard and a range of sequence numbers
(``DDBStreamBatchInfo``). :func:`resolve_batch` reads that range back from the stream through the DynamoDB
Streams API (GetShardIterator ``AT_SEQUENCE_NUMBER``, then GetRecords until past the end) and lists the
requests it covers, or says the records have left the stream's 24-hour retention.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import boto3
import pandas as pd
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from streamdesk_processor.item import ID

from backend.computed.rollups_health import (
    RollupsTrigger,
    deployed_rollups_trigger,
    local_rollups_trigger,
    request_activity,
)
from backend.computed.stuck import STREAM_RETENTION_MS, TriggerHealth
from backend.deployed.health import (
    DeployedHealth,
    FailedBatch,
    FailureMessageError,
    Part,
    health_from,
    parse_failure_message,
)
from backend.settings import Settings
from backend.stack_restarts import StackRestarts, read_restarts
from backend.store.calls import StoreUnavailable
from backend.store.models import TableInfo
from backend.store.reader import RequestStore
from backend.trigger_state import TriggerState, read_failure_destination, read_trigger_state

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient


log = logging.getLogger(__name__)

MAX_GET_RECORDS_PAGES: Final = 200  # bound on one resolution (1,000 records a page at most)
MAX_EMPTY_PAGES: Final = 3  # an open shard answers empty pages at its tip: stop after a few
MAX_MESSAGES_SHOWN: Final = 20  # the newest failure-destination messages resolved on the page
PER_MINUTE_COLUMNS: Final = ("batches", "records", "errors")
PER_MINUTE_SHOWN: Final = 60  # the trigger keeps the last 60 minutes
MINUTE_MS: Final = 60_000


class Resolution(StrEnum):
    RESOLVED = "resolved"  # every record of the range was read
    PARTIAL = "partial"  # the range's end was not reached (the shard answered nothing further)
    EXPIRED = "beyond retention"  # the records have left the stream (24 hours)
    UNREADABLE = "unreadable"  # the stream could not be read (permissions, network, bad message)


@dataclass(frozen=True)
class ResolvedBatch:
    """A batch the trigger gave up on, with the requests its records belong to."""

    batch: FailedBatch
    resolution: Resolution
    request_ids: tuple[str, ...] = ()  # in stream order, each once
    records: int = 0  # stream records read in the range
    detail: str = ""


# --------------------------------------------------------------------------------- stream reading
def streams_client(settings: Settings) -> DynamoDBStreamsClient:
    """A DynamoDB Streams client for the settings' DynamoDB (local or AWS)."""
    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2})
    return boto3.client("dynamodbstreams", config=config, **settings.boto3_kwargs())


def _iso_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def resolve_batch(
    streams: DynamoDBStreamsClient, batch: FailedBatch, now_ms: int, stream_arn: str | None = None
) -> ResolvedBatch:
    """Read the records ``batch`` covers back from the stream and list their requests' ids.

    ``stream_arn`` is used when the message does not name its stream. Never raises for a stream that
    cannot be read: the answer says why instead.
    """
    arn = batch.stream_arn or stream_arn
    if not arn:
        return ResolvedBatch(batch, Resolution.UNREADABLE, detail="the message names no stream")
    first_at = _iso_ms(batch.first_record_at) or _iso_ms(batch.timestamp)
    if first_at is not None and now_ms - first_at > STREAM_RETENTION_MS:
        return ResolvedBatch(
            batch,
            Resolution.EXPIRED,
            detail="its records arrived over 24 hours ago and have left the stream; "
            "find the requests by time on the Requests page",
        )
    try:
        ids, records, reached_end = _read_range(streams, arn, batch)
    except ClientError as error:
        code = _error_code(error)
        if code in ("TrimmedDataAccessException", "ExpiredIteratorException", "ResourceNotFoundException"):
            return ResolvedBatch(
                batch,
                Resolution.EXPIRED,
                detail=f"the stream no longer holds these records ({code}): they have left its 24-hour "
                "retention",
            )
        return ResolvedBatch(batch, Resolution.UNREADABLE, detail=f"{code}: {error}")
    except (BotoCoreError, ValueError) as error:
        return ResolvedBatch(batch, Resolution.UNREADABLE, detail=str(error))
    if not reached_end:
        return ResolvedBatch(
            batch,
            Resolution.PARTIAL,
            tuple(ids),
            records,
            detail="the end of the range was not reached: the shard returned no further records",
        )
    return ResolvedBatch(batch, Resolution.RESOLVED, tuple(ids), records)


def _read_range(
    streams: DynamoDBStreamsClient, arn: str, batch: FailedBatch
) -> tuple[dict[str, None], int, bool]:
    """The request ids (in order) of the records from the batch's first sequence number to its last, how
    many records were read, and whether the last was reached. Raises what the Streams API raises."""
    end = int(batch.end_sequence_number)
    iterator = streams.get_shard_iterator(
        StreamArn=arn,
        ShardId=batch.shard_id,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        SequenceNumber=batch.start_sequence_number,
    ).get("ShardIterator")
    ids: dict[str, None] = {}
    records = 0
    empty = 0
    for _ in range(MAX_GET_RECORDS_PAGES):
        if not iterator:
            break
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        iterator = page.get("NextShardIterator")
        if not page.get("Records"):
            empty += 1
            if empty >= MAX_EMPTY_PAGES:
                break
            continue
        empty = 0
        for record in page["Records"]:
            stream = record.get("dynamodb") or {}
            sequence = int(stream.get("SequenceNumber", "0"))
            if sequence > end:
                return ids, records, True
            records += 1
            request_id = ((stream.get("Keys") or {}).get(ID) or {}).get("S")
            if request_id:
                ids[str(request_id)] = None
            if sequence == end:
                return ids, records, True
    return ids, records, False


def parse_messages(messages: Iterable[Any]) -> tuple[list[FailedBatch], list[str]]:
    """Failure-destination messages (JSON text or parsed objects) as batches, and what could not be read."""
    batches: list[FailedBatch] = []
    problems: list[str] = []
    for number, message in enumerate(messages, start=1):
        if isinstance(message, FailedBatch):
            batches.append(message)
            continue
        try:
            body = message if isinstance(message, str | Mapping) else json.dumps(message)
            batches.append(parse_failure_message(body, f"line {number}"))
        except (FailureMessageError, TypeError) as error:
            problems.append(str(error))
    return batches, problems


# --------------------------------------------------------------------------------- local trigger
@dataclass(frozen=True)
class LocalTrigger:
    """The local trigger twin as its state file describes it (``state`` is None when it never ran)."""

    state: TriggerState | None
    health: TriggerHealth


def per_minute_frame(state: TriggerState | None, now_ms: int | None = None) -> pd.DataFrame:
    """The trigger's per-minute counts as a long frame: time (UTC), metric, value.

    With ``now_ms``, every minute of the hour before it is present (0 where the trigger saw nothing), so
    a chart shows the quiet minutes too.
    """
    counts: dict[int, dict[str, float]] = {
        entry.minute: {column: getattr(entry, column) for column in PER_MINUTE_COLUMNS}
        for entry in (state.per_minute if state is not None else [])
    }
    if now_ms is not None and counts:
        last = now_ms // MINUTE_MS * MINUTE_MS
        for minute in range(last - (PER_MINUTE_SHOWN - 1) * MINUTE_MS, last + 1, MINUTE_MS):
            counts.setdefault(minute, dict.fromkeys(PER_MINUTE_COLUMNS, 0))
    rows = [
        {"time": pd.Timestamp(minute, unit="ms", tz="UTC"), "metric": column, "value": values[column]}
        for minute, values in sorted(counts.items())
        for column in PER_MINUTE_COLUMNS
    ]
    return pd.DataFrame(rows, columns=["time", "metric", "value"])


def metrics_frame(deployed: DeployedHealth | None) -> pd.DataFrame:
    """The deployed function's CloudWatch points as a long frame: time, metric, value."""
    points = deployed.metrics if deployed is not None else []
    return pd.DataFrame([p._asdict() for p in points], columns=["metric", "time", "value"])


# --------------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class HealthReport:
    """Everything the Health page shows; a part that could not be read is None with its reason in errors."""

    deployed_mode: bool
    trigger: TriggerHealth
    local: LocalTrigger | None
    deployed: DeployedHealth | None
    failures: list[ResolvedBatch]
    failure_messages: int  # how many messages the destination holds (or shows)
    table: TableInfo | None
    errors: dict[str, str] = field(default_factory=dict)
    # The local supervisor's restarts (``make up``); None for a deployed stack or when it never ran here.
    restarts: StackRestarts | None = None
    # The rollups consumer's trigger (None: a deployed stack without rollups) and the requests per minute
    # of the last hour from the rollups (None when they cannot be read: the reason is in errors).
    rollups_trigger: RollupsTrigger | None = None
    activity: pd.DataFrame | None = None


def local_trigger(settings: Settings, now_ms: int) -> LocalTrigger:
    state = read_trigger_state(settings)
    return LocalTrigger(state, TriggerHealth.from_local_state(state, now_ms))


def _local_failures(settings: Settings) -> list[Any]:
    """The local destination's messages, newest first."""
    return list(read_failure_destination(settings))


def _resolve_all(
    streams: DynamoDBStreamsClient, batches: list[FailedBatch], now_ms: int, stream_arn: str | None
) -> list[ResolvedBatch]:
    return [resolve_batch(streams, batch, now_ms, stream_arn) for batch in batches[:MAX_MESSAGES_SHOWN]]


def load_health(settings: Settings, store: RequestStore, now_ms: int) -> HealthReport:
    """Read the trigger, the failure destination and the table. Never raises for one unreadable part."""
    errors: dict[str, str] = {}
    table: TableInfo | None = None
    stream_arn: str | None = None
    try:
        table = store.table_info()
        stream_arn = table.latest_stream_arn
    except StoreUnavailable as error:
        errors[Part.TABLE] = str(error)

    activity = _activity(settings, store, now_ms, errors)
    if settings.stack:
        report = _deployed_report(settings, table, stream_arn, now_ms, errors)
        rollups = deployed_rollups_trigger(report.deployed) if report.deployed is not None else None
        return replace(report, rollups_trigger=rollups, activity=activity)

    local: LocalTrigger | None = None
    try:
        local = local_trigger(settings, now_ms)
        trigger = local.health
    except (OSError, ValueError) as error:
        errors[Part.TRIGGER] = f"cannot read the trigger's state file: {error}"
        trigger = TriggerHealth(running=None)
    failures: list[ResolvedBatch] = []
    count = 0
    try:
        batches, problems = parse_messages(_local_failures(settings))
        count = len(batches)
        if problems:
            errors[Part.FAILURE_DESTINATION] = "; ".join(problems[:5])
        if batches:
            failures = _resolve_all(streams_client(settings), batches, now_ms, stream_arn)
    except (OSError, ValueError) as error:
        errors[Part.FAILURE_DESTINATION] = f"cannot read the failure destination: {error}"
    restarts: StackRestarts | None = None
    try:
        restarts = read_restarts(settings.data_dir)
    except ValueError as error:
        errors[Part.RESTARTS] = str(error)
    rollups = local_rollups_trigger(settings, now_ms)
    return HealthReport(
        False, trigger, local, None, failures, count, table, errors, restarts, rollups, activity
    )


def _activity(
    settings: Settings, store: RequestStore, now_ms: int, errors: dict[str, str]
) -> pd.DataFrame | None:
    """The requests per minute of the last hour, from the rollups; None (said in errors) when unreadable."""
    reader = store.rollups()
    try:
        return request_activity(reader, now_ms)
    except StoreUnavailable as error:
        errors[Part.ROLLUPS] = f"cannot read the rollups: {error}"
        return None


def _deployed_report(
    settings: Settings, table: TableInfo | None, stream_arn: str | None, now_ms: int, errors: dict[str, str]
) -> HealthReport:
    from backend.deployed.health import collect
    from backend.deployed.stack import StackError, session_for, stack_outputs

    assert settings.stack is not None
    session = session_for(settings)
    try:
        outputs = stack_outputs(settings.stack, session.client("cloudformation", settings.region))
    except (StackError, BotoCoreError) as error:
        errors[Part.STACK] = str(error)
        return HealthReport(True, TriggerHealth(running=None), None, None, [], 0, table, errors)
    deployed = collect(outputs, session, region=settings.region)
    streams = session.client("dynamodbstreams", settings.region)
    return deployed_report(deployed, streams, table, stream_arn or outputs.table_stream_arn, now_ms, errors)


def deployed_report(
    deployed: DeployedHealth,
    streams: DynamoDBStreamsClient,
    table: TableInfo | None,
    stream_arn: str | None,
    now_ms: int,
    errors: dict[str, str] | None = None,
) -> HealthReport:
    """The report of a deployed stack from what :func:`backend.deployed.health.collect` read: the
    trigger as :mod:`backend.computed.stuck` sees it, and the failure queue's messages resolved through
    ``streams``."""
    errors = {**(errors or {}), **deployed.errors}
    failures = _resolve_all(streams, list(deployed.failures), now_ms, stream_arn)
    count = deployed.queue_depth.total if deployed.queue_depth is not None else len(deployed.failures)
    trigger = health_from(deployed.mapping, deployed.metrics)
    return HealthReport(True, trigger, None, deployed, failures, count, table, errors)
