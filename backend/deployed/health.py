"""Health of a deployed stack's trigger, read from AWS (locally, `trigger/state.json` tells the same).

- the Lambda event source mapping (state, last processing result, batch and retry settings);
- the function's CloudWatch metrics (IteratorAge, Errors, Throttles, Invocations) as tidy rows;
- the on-failure queue: its depth, and its messages peeked (never deleted) and parsed for
  ``DDBStreamBatchInfo``, the shard and sequence range of a batch the trigger gave up on;
- the rollups consumer's mapping (``RollupsStream``, found by its function, the stack's
  ``RollupsFunctionName`` output) and that function's metrics: how far behind the counts are.

Every reader takes the boto3 client it needs, so tests pass moto's clients and the dashboard passes real
ones; :func:`collect` gathers all of it for one stack and keeps going when one part is not readable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from backend.computed.stuck import TriggerHealth
from backend.deployed.stack import StackError, StackOutputs, session_for, stack_outputs
from backend.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient


log = logging.getLogger(__name__)

# (metric name, statistic): IteratorAge is a lag, so its worst value matters; the others are counts.
FUNCTION_METRICS: tuple[tuple[str, str], ...] = (
    ("IteratorAge", "Maximum"),
    ("Errors", "Sum"),
    ("Throttles", "Sum"),
    ("Invocations", "Sum"),
)
LAMBDA_NAMESPACE = "AWS/Lambda"
# CloudWatch charges per metric read ($0.01 per 1,000) and Lambda's metrics have one-minute periods:
# reading them more often than this costs money and shows nothing new.
# SQS has no peek: reading means receiving. A short visibility timeout hides a message from other readers
# only briefly, and it is never deleted, so it stays for whoever resolves the failed batch.
PEEK_VISIBILITY_TIMEOUT_SECONDS = 1


class Part(StrEnum):
    """A part of the health report that can fail to be read on its own (the key of its ``errors``)."""

    TABLE = "table"
    TRIGGER = "trigger"
    FAILURE_DESTINATION = "failure_destination"
    STACK = "stack"
    MAPPING = "mapping"
    METRICS = "metrics"
    FAILURE_QUEUE = "failure_queue"
    RESTARTS = "restarts"  # the local supervisor's restart file
    ROLLUPS = "rollups"  # the rollups table (the per-minute requests)
    ROLLUPS_TRIGGER = "rollups_trigger"  # the rollups consumer's trigger (state file or mapping)


@dataclass(frozen=True)
class MappingStatus:
    """The event source mapping as ``lambda:GetEventSourceMapping`` describes it."""

    uuid: str
    state: str
    state_transition_reason: str | None
    last_processing_result: str | None
    batch_size: int | None
    maximum_batching_window_seconds: int | None
    maximum_retry_attempts: int | None
    maximum_record_age_seconds: int | None
    bisect_batch_on_function_error: bool | None
    parallelization_factor: int | None
    starting_position: str | None
    function_response_types: tuple[str, ...]
    filter_patterns: tuple[str, ...]
    on_failure_destination: str | None
    event_source_arn: str | None
    function_arn: str | None
    last_modified: datetime | None

    @property
    def enabled(self) -> bool:
        return self.state == "Enabled"


def parse_event_source_mapping(response: Mapping[str, Any]) -> MappingStatus:
    """A :class:`MappingStatus` from a GetEventSourceMapping response (absent fields become None)."""
    filters = (response.get("FilterCriteria") or {}).get("Filters") or []
    on_failure = ((response.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    last_modified = response.get("LastModified")
    if isinstance(last_modified, int | float):
        last_modified = datetime.fromtimestamp(last_modified, tz=UTC)
    return MappingStatus(
        uuid=str(response["UUID"]),
        state=str(response.get("State", "Unknown")),
        state_transition_reason=response.get("StateTransitionReason"),
        last_processing_result=response.get("LastProcessingResult"),
        batch_size=response.get("BatchSize"),
        maximum_batching_window_seconds=response.get("MaximumBatchingWindowInSeconds"),
        maximum_retry_attempts=response.get("MaximumRetryAttempts"),
        maximum_record_age_seconds=response.get("MaximumRecordAgeInSeconds"),
        bisect_batch_on_function_error=response.get("BisectBatchOnFunctionError"),
        parallelization_factor=response.get("ParallelizationFactor"),
        starting_position=response.get("StartingPosition"),
        function_response_types=tuple(response.get("FunctionResponseTypes") or ()),
        filter_patterns=tuple(str(f.get("Pattern", "")) for f in filters),
        on_failure_destination=on_failure,
        event_source_arn=response.get("EventSourceArn"),
        function_arn=response.get("FunctionArn"),
        last_modified=last_modified if isinstance(last_modified, datetime) else None,
    )


def event_source_mapping(uuid: str, lambda_client: LambdaClient) -> MappingStatus:
    """The event source mapping ``uuid`` (the stack's ``EventSourceMappingId`` output)."""
    return parse_event_source_mapping(lambda_client.get_event_source_mapping(UUID=uuid))


def mapping_of_function(function_name: str, lambda_client: LambdaClient) -> MappingStatus | None:
    """The (first) event source mapping of ``function_name``, or None when it has none. The rollups
    consumer has one, ``RollupsStream``; the stack names its function rather than the mapping."""
    mappings = lambda_client.list_event_source_mappings(FunctionName=function_name).get("EventSourceMappings")
    return parse_event_source_mapping(mappings[0]) if mappings else None


class MetricPoint(NamedTuple):
    """One tidy row: ``pandas.DataFrame(points)`` has the columns metric, time, value."""

    metric: str
    time: datetime
    value: float


def function_metrics(
    function_name: str,
    cloudwatch_client: CloudWatchClient,
    *,
    end: datetime | None = None,
    window: timedelta = timedelta(hours=1),
    period_seconds: int = 60,
) -> list[MetricPoint]:
    """The function's trigger metrics over ``window`` before ``end`` (now), one row per metric and period.

    Periods without data have no row (CloudWatch returns none); rows are sorted by metric, then time.
    """
    end = end or datetime.now(tz=UTC)
    queries = [
        {
            "Id": f"m{index}",
            "Label": name,
            "MetricStat": {
                "Metric": {
                    "Namespace": LAMBDA_NAMESPACE,
                    "MetricName": name,
                    "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
                },
                "Period": period_seconds,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for index, (name, stat) in enumerate(FUNCTION_METRICS)
    ]
    names = {f"m{index}": name for index, (name, _) in enumerate(FUNCTION_METRICS)}
    points: list[MetricPoint] = []
    kwargs: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": end - window,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    while True:
        response = cloudwatch_client.get_metric_data(**kwargs)
        for result in response.get("MetricDataResults", []):
            metric = names[result["Id"]]
            for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=True):
                points.append(MetricPoint(metric, stamp, float(value)))
        token = response.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    points.sort(key=lambda p: (p.metric, p.time))
    return points


@dataclass(frozen=True)
class QueueDepth:
    """Messages in the failure queue: each one is a batch the trigger gave up on."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


def failure_queue_depth(queue_url: str, sqs_client: SQSClient) -> QueueDepth:
    attributes = sqs_client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return QueueDepth(
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


@dataclass(frozen=True)
class FailedBatch:
    """A batch the trigger gave up on, as Lambda reports it to an SQS on-failure destination.

    The records themselves are not in the message: they stay readable in the stream for 24 hours, from
    ``start_sequence_number`` to ``end_sequence_number`` on ``shard_id``.
    """

    message_id: str | None
    shard_id: str
    start_sequence_number: str
    end_sequence_number: str
    batch_size: int
    stream_arn: str | None
    first_record_at: str | None
    last_record_at: str | None
    condition: str | None  # why Lambda gave up: RetryAttemptsExhausted, RecordAgeExceeded, ...
    function_error: str | None
    approximate_invoke_count: int | None
    timestamp: str | None


class FailureMessageError(ValueError):
    """A failure-queue message that is not a Lambda DynamoDB-stream failure record."""


def parse_failure_message(body: str | Mapping[str, Any], message_id: str | None = None) -> FailedBatch:
    """A :class:`FailedBatch` from the JSON Lambda sends to the on-failure destination."""
    try:
        document = json.loads(body) if isinstance(body, str) else dict(body)
    except json.JSONDecodeError as error:
        raise FailureMessageError(f"message {message_id} is not JSON: {error}") from error
    info = document.get("DDBStreamBatchInfo") if isinstance(document, dict) else None
    if not isinstance(info, dict):
        raise FailureMessageError(f"message {message_id} has no DDBStreamBatchInfo")
    request = document.get("requestContext") or {}
    response = document.get("responseContext") or {}
    try:
        return FailedBatch(
            message_id=message_id,
            shard_id=str(info["shardId"]),
            start_sequence_number=str(info["startSequenceNumber"]),
            end_sequence_number=str(info["endSequenceNumber"]),
            batch_size=int(info["batchSize"]),
            stream_arn=info.get("streamArn"),
            first_record_at=info.get("approximateArrivalOfFirstRecord"),
            last_record_at=info.get("approximateArrivalOfLastRecord"),
            condition=request.get("condition"),
            function_error=response.get("functionError"),
            approximate_invoke_count=request.get("approximateInvokeCount"),
            timestamp=document.get("timestamp"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise FailureMessageError(f"message {message_id}: incomplete DDBStreamBatchInfo ({error})") from error


def peek_failures(
    queue_url: str,
    sqs_client: SQSClient,
    *,
    max_messages: int = 10,
    visibility_timeout: int = PEEK_VISIBILITY_TIMEOUT_SECONDS,
) -> list[FailedBatch]:
    """Up to ``max_messages`` (at most 10, one receive) failure records, left in the queue.

    Messages that are not failure records are skipped: the queue belongs to the stack, but a person may
    have sent something else to it.
    """
    response = sqs_client.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max(1, min(max_messages, 10)),
        VisibilityTimeout=visibility_timeout,
        WaitTimeSeconds=0,
    )
    batches: list[FailedBatch] = []
    seen: set[str | None] = set()
    for message in response.get("Messages", []):
        message_id = message.get("MessageId")
        if message_id in seen:
            continue
        seen.add(message_id)
        try:
            batches.append(parse_failure_message(message.get("Body", ""), message_id))
        except FailureMessageError:
            continue
    return batches


@dataclass(frozen=True)
class DeployedHealth:
    """Everything above for one stack; a part that could not be read is None, with its reason in errors."""

    mapping: MappingStatus | None
    metrics: list[MetricPoint]
    queue_depth: QueueDepth | None
    failures: list[FailedBatch]
    errors: dict[str, str] = field(default_factory=dict)
    # The rollups consumer's mapping and its function's metrics (a stack without rollups: None and []).
    rollups_mapping: MappingStatus | None = None
    rollups_metrics: list[MetricPoint] = field(default_factory=list)


def _mapping_and_metrics(
    outputs: StackOutputs,
    session: boto3.Session,
    region: str | None,
    window: timedelta,
    period_seconds: int = 60,
) -> tuple[MappingStatus | None, list[MetricPoint], dict[str, str]]:
    """The event source mapping and the function's metrics; what could not be read is in the errors."""
    errors: dict[str, str] = {}
    mapping: MappingStatus | None = None
    metrics: list[MetricPoint] = []
    try:
        mapping = event_source_mapping(outputs.event_source_mapping_id, session.client("lambda", region))
    except (ClientError, BotoCoreError) as error:
        errors[Part.MAPPING] = str(error)
    try:
        metrics = function_metrics(
            outputs.function_name,
            session.client("cloudwatch", region),
            window=window,
            period_seconds=period_seconds,
        )
    except (ClientError, BotoCoreError) as error:
        errors[Part.METRICS] = str(error)
    return mapping, metrics, errors


def collect(
    outputs: StackOutputs,
    session: boto3.Session,
    *,
    window: timedelta = timedelta(hours=1),
    period_seconds: int = 60,
    region: str | None = None,
) -> DeployedHealth:
    """Read the mapping, the metrics and the failure queue of a deployed stack.

    One missing permission (say ``cloudwatch:GetMetricData``) leaves its part empty and explains why in
    ``errors`` instead of hiding the parts that could be read.
    """
    mapping, metrics, errors = _mapping_and_metrics(outputs, session, region, window, period_seconds)
    depth: QueueDepth | None = None
    failures: list[FailedBatch] = []
    sqs = session.client("sqs", region)
    try:
        depth = failure_queue_depth(outputs.failure_queue_url, sqs)
        if depth.visible:
            failures = peek_failures(outputs.failure_queue_url, sqs)
    except (ClientError, BotoCoreError) as error:
        errors[Part.FAILURE_QUEUE] = str(error)
    rollups_mapping, rollups_metrics = _rollups_consumer(outputs, session, region, window, errors)
    return DeployedHealth(mapping, metrics, depth, failures, errors, rollups_mapping, rollups_metrics)


def _rollups_consumer(
    outputs: StackOutputs,
    session: boto3.Session,
    region: str | None,
    window: timedelta,
    errors: dict[str, str],
) -> tuple[MappingStatus | None, list[MetricPoint]]:
    """The rollups consumer's mapping and metrics; a stack deployed before the rollups has neither."""
    if not outputs.rollups_function_name:
        return None, []
    try:
        mapping = mapping_of_function(outputs.rollups_function_name, session.client("lambda", region))
        metrics = function_metrics(
            outputs.rollups_function_name, session.client("cloudwatch", region), window=window
        )
    except (ClientError, BotoCoreError) as error:
        errors[Part.ROLLUPS_TRIGGER] = str(error)
        return None, []
    if mapping is None:
        errors[Part.ROLLUPS_TRIGGER] = f"function {outputs.rollups_function_name} has no event source mapping"
    return mapping, metrics


# ------------------------------------------------------------------------------- for backend.computed.stuck
def health_from(mapping: MappingStatus | None, metrics: list[MetricPoint]) -> TriggerHealth:
    """The trigger as :mod:`backend.computed.stuck` sees it, from the mapping and the function's metrics.

    ``running`` is None (unknown) while the mapping is being created, updated or could not be read;
    ``iterator_age_ms`` is the latest IteratorAge; ``last_batch_at`` the start of the latest minute with
    invocations. AWS has no heartbeat to report.
    """
    running: bool | None = None
    if mapping is not None and mapping.state in ("Enabled", "Disabled", "Disabling"):
        running = mapping.state == "Enabled"
    ages = [p for p in metrics if p.metric == "IteratorAge"]
    batches = [p for p in metrics if p.metric == "Invocations" and p.value > 0]
    return TriggerHealth(
        running=running,
        iterator_age_ms=int(max(ages, key=lambda p: p.time).value) if ages else None,
        last_batch_at=int(max(p.time for p in batches).timestamp() * 1000) if batches else None,
    )


def trigger_health(
    settings: Settings,
    session: boto3.Session | None = None,
    *,
    window: timedelta = timedelta(minutes=15),
) -> TriggerHealth:
    """The deployed trigger's health for ``settings.stack`` (cached by backend.dashboard.reads).

    Never raises for an unreadable stack, mapping or metric: the answer is then "unknown"
    (``running=None``) and the reason is logged, so a page that diagnoses stuck requests keeps working.
    """
    if not settings.stack:
        raise ValueError("trigger_health reads a deployed stack: settings.stack is not set")
    session = session or session_for(settings)
    try:
        outputs = stack_outputs(settings.stack, session.client("cloudformation", settings.region))
    except (StackError, BotoCoreError) as error:
        log.warning("trigger health unknown: %s", error)
        return TriggerHealth(running=None)
    mapping, metrics, errors = _mapping_and_metrics(outputs, session, settings.region, window)
    for part, problem in errors.items():
        log.warning("%s of stack %s unreadable: %s", part, settings.stack, problem)
    return health_from(mapping, metrics)
