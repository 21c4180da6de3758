"""Deployed-mode health: the event source mapping, CloudWatch metrics, the failure queue (moto: Lambda,
CloudWatch and SQS have no local engine).

moto's Lambda only maps SQS, Kinesis or its own DynamoDB streams; DynamoDB is never mocked here, so the
moto mapping reads from a queue and carries the stream settings the template gives. The DynamoDB-only
fields moto leaves out (LastProcessingResult, a real state transition reason) are checked on a recorded
GetEventSourceMapping response instead.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from backend.computed.rollups_health import deployed_rollups_trigger
from backend.computed.stuck import TriggerHealth
from backend.deployed.health import (
    FailureMessageError,
    MetricPoint,
    collect,
    event_source_mapping,
    failure_queue_depth,
    function_metrics,
    health_from,
    parse_event_source_mapping,
    parse_failure_message,
    peek_failures,
    trigger_health,
)
from backend.deployed.stack import StackOutputs
from backend.settings import Settings, load_settings
from tests.unit.test_stack import _stack_template

REGION = "eu-west-1"
FUNCTION = "streamdesk-ProcessorFunction-ABC"
ROLLUPS_FUNCTION = "streamdesk-RollupsFunction-DEF"
STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-11-27T00:00:00.000"
FILTERS = [
    '{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["PENDING"]}}}}',
    '{"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"status": {"S": ["PENDING"]}}, '
    '"OldImage": {"status": {"S": ["FAILED"]}}}}',
]

# What Lambda sends to an SQS on-failure destination for a DynamoDB stream (AWS Lambda developer guide).
FAILURE_RECORD: dict[str, Any] = {
    "requestContext": {
        "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
        "functionArn": f"arn:aws:lambda:eu-west-1:123456789012:function:{FUNCTION}",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 4,
    },
    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    "version": "1.0",
    "timestamp": "2026-11-27T00:13:49.717Z",
    "DDBStreamBatchInfo": {
        "shardId": "shardId-00000001573689847184-864758bb",
        "startSequenceNumber": "800000000003126276362",
        "endSequenceNumber": "800000000003126276399",
        "approximateArrivalOfFirstRecord": "2026-11-27T00:13:19Z",
        "approximateArrivalOfLastRecord": "2026-11-27T00:13:20Z",
        "batchSize": 3,
        "streamArn": STREAM_ARN,
    },
}

# A GetEventSourceMapping response for a DynamoDB stream, as boto3 returns it (shape from the Lambda API
# reference; values as the template sets them).
RECORDED_MAPPING: dict[str, Any] = {
    "UUID": "3f1e2d4c-0000-4000-8000-000000000001",
    "StartingPosition": "TRIM_HORIZON",
    "BatchSize": 10,
    "MaximumBatchingWindowInSeconds": 0,
    "ParallelizationFactor": 1,
    "EventSourceArn": STREAM_ARN,
    "FilterCriteria": {"Filters": [{"Pattern": p} for p in FILTERS]},
    "FunctionArn": f"arn:aws:lambda:eu-west-1:123456789012:function:{FUNCTION}",
    "LastModified": datetime(2026, 11, 27, 0, 5, tzinfo=UTC),
    "LastProcessingResult": "PROBLEM: Function call failed",
    "State": "Enabled",
    "StateTransitionReason": "USER_INITIATED",
    "DestinationConfig": {
        "OnFailure": {"Destination": "arn:aws:sqs:eu-west-1:123456789012:streamdesk-FailureQueue-1"}
    },
    "MaximumRecordAgeInSeconds": 3600,
    "BisectBatchOnFunctionError": True,
    "MaximumRetryAttempts": 3,
    "TumblingWindowInSeconds": 0,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
}


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def _queue(session: boto3.Session, name: str = "failures") -> tuple[str, str]:
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _function(session: boto3.Session, name: str = FUNCTION) -> None:
    """A function in moto (never invoked: nothing is sent to the queue it maps)."""
    role = session.client("iam").create_role(
        RoleName="processor" if name == FUNCTION else f"role-{name}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    return {}\n")
    session.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handler.lambda_handler",
        Code={"ZipFile": code.getvalue()},
    )


def _outputs(session: boto3.Session, mapping_id: str, queue_url: str, queue_arn: str) -> StackOutputs:
    return StackOutputs(
        api_url="https://abc.execute-api.eu-west-1.amazonaws.com/v1",
        api_key_id="key",
        table_name="t",
        table_stream_arn=STREAM_ARN,
        function_name=FUNCTION,
        event_source_mapping_id=mapping_id,
        failure_queue_url=queue_url,
        failure_queue_arn=queue_arn,
        time_index_shards=4,
        retention_days=7,
        rollups_table_name="t-rollups",
        rollup_write_shards=4,
    )


# ------------------------------------------------------------------------------ event source mapping
def test_mapping_settings_read_back_from_lambda(aws: boto3.Session) -> None:
    _function(aws)
    _, source_arn = _queue(aws, "mapping-source")
    _, failure_arn = _queue(aws, "failures")
    created = aws.client("lambda").create_event_source_mapping(
        EventSourceArn=source_arn,
        FunctionName=FUNCTION,
        BatchSize=10,
        MaximumRetryAttempts=3,
        MaximumRecordAgeInSeconds=3600,
        BisectBatchOnFunctionError=True,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        FilterCriteria={"Filters": [{"Pattern": p} for p in FILTERS]},
        DestinationConfig={"OnFailure": {"Destination": failure_arn}},
    )
    status = event_source_mapping(created["UUID"], aws.client("lambda"))
    assert status.uuid == created["UUID"]
    assert status.enabled and status.state == "Enabled"
    assert status.batch_size == 10
    assert status.maximum_retry_attempts == 3
    assert status.maximum_record_age_seconds == 3600
    assert status.bisect_batch_on_function_error is True
    assert status.function_response_types == ("ReportBatchItemFailures",)
    assert status.filter_patterns == tuple(FILTERS)
    assert status.on_failure_destination == failure_arn


def test_recorded_dynamodb_mapping_response_is_parsed() -> None:
    status = parse_event_source_mapping(RECORDED_MAPPING)
    assert status.last_processing_result == "PROBLEM: Function call failed"
    assert status.state_transition_reason == "USER_INITIATED"
    assert status.event_source_arn == STREAM_ARN
    assert status.starting_position == "TRIM_HORIZON"
    assert status.parallelization_factor == 1
    assert status.maximum_batching_window_seconds == 0
    assert status.last_modified == datetime(2026, 11, 27, 0, 5, tzinfo=UTC)
    disabled = parse_event_source_mapping({**RECORDED_MAPPING, "State": "Disabled"})
    assert not disabled.enabled


def test_a_sparse_mapping_response_gives_nones() -> None:
    status = parse_event_source_mapping({"UUID": "u", "State": "Creating"})
    assert status.on_failure_destination is None
    assert status.filter_patterns == ()
    assert status.maximum_retry_attempts is None
    assert not status.enabled


# ---------------------------------------------------------------------------------------- metrics
def test_metrics_come_back_as_tidy_rows(aws: boto3.Session) -> None:
    cloudwatch = aws.client("cloudwatch")
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    earlier = now - timedelta(minutes=5)
    dimensions = [{"Name": "FunctionName", "Value": FUNCTION}]
    other = [{"Name": "FunctionName", "Value": "someone-else"}]
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            # Two IteratorAge samples in one minute: the row is their maximum, not their sum.
            {"MetricName": "IteratorAge", "Dimensions": dimensions, "Timestamp": earlier, "Value": 120.0},
            {"MetricName": "IteratorAge", "Dimensions": dimensions, "Timestamp": earlier, "Value": 900.0},
            # Two Errors in one minute: counts are summed.
            {"MetricName": "Errors", "Dimensions": dimensions, "Timestamp": earlier, "Value": 1.0},
            {"MetricName": "Errors", "Dimensions": dimensions, "Timestamp": earlier, "Value": 2.0},
            {"MetricName": "Invocations", "Dimensions": dimensions, "Timestamp": earlier, "Value": 7.0},
            # Another function's data must not show up.
            {"MetricName": "Errors", "Dimensions": other, "Timestamp": earlier, "Value": 50.0},
            # Outside the window.
            {
                "MetricName": "Invocations",
                "Dimensions": dimensions,
                "Timestamp": now - timedelta(hours=3),
                "Value": 99.0,
            },
        ],
    )
    rows = function_metrics(FUNCTION, cloudwatch, end=now + timedelta(minutes=1), window=timedelta(hours=1))
    assert all(isinstance(r, MetricPoint) for r in rows)
    by_metric = {r.metric: r for r in rows}
    assert set(by_metric) == {"IteratorAge", "Errors", "Invocations"}  # no Throttles data, no rows
    assert len(rows) == 3
    assert by_metric["IteratorAge"].value == 900.0
    assert by_metric["Errors"].value == 3.0
    assert by_metric["Invocations"].value == 7.0
    assert by_metric["Errors"].time.replace(tzinfo=UTC) == earlier
    assert rows == sorted(rows, key=lambda r: (r.metric, r.time))


# ---------------------------------------------------------------------------------- failure queue
def test_failure_messages_are_peeked_parsed_and_never_deleted(aws: boto3.Session) -> None:
    sqs = aws.client("sqs")
    url, _ = _queue(aws)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(FAILURE_RECORD))
    second = json.loads(json.dumps(FAILURE_RECORD))
    second["DDBStreamBatchInfo"].update(shardId="shardId-2", batchSize=1)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(second))
    sqs.send_message(QueueUrl=url, MessageBody="not a failure record")  # skipped, not fatal

    assert failure_queue_depth(url, sqs).visible == 3
    batches = peek_failures(url, sqs, visibility_timeout=0)
    assert sorted(b.shard_id for b in batches) == ["shardId-00000001573689847184-864758bb", "shardId-2"]
    first = next(b for b in batches if b.shard_id.startswith("shardId-0000"))
    assert first.start_sequence_number == "800000000003126276362"
    assert first.end_sequence_number == "800000000003126276399"
    assert first.batch_size == 3
    assert first.stream_arn == STREAM_ARN
    assert first.condition == "RetryAttemptsExhausted"
    assert first.function_error == "Unhandled"
    assert first.approximate_invoke_count == 4
    assert first.message_id
    # Still there: a peek never deletes.
    assert failure_queue_depth(url, sqs).total == 3


def test_peek_hides_messages_only_briefly(aws: boto3.Session) -> None:
    sqs = aws.client("sqs")
    url, _ = _queue(aws)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(FAILURE_RECORD))
    assert len(peek_failures(url, sqs)) == 1
    depth = failure_queue_depth(url, sqs)
    assert (depth.visible, depth.in_flight) == (0, 1)  # in flight for the short timeout, not gone


def test_parse_failure_message_rejects_other_json() -> None:
    with pytest.raises(FailureMessageError, match="DDBStreamBatchInfo"):
        parse_failure_message(json.dumps({"hello": "world"}), "m1")
    with pytest.raises(FailureMessageError, match="incomplete"):
        parse_failure_message({"DDBStreamBatchInfo": {"shardId": "s"}}, "m2")
    with pytest.raises(FailureMessageError, match="not JSON"):
        parse_failure_message("{", "m3")


# ----------------------------------------------------------------------------------------- collect
def test_collect_reads_every_part(aws: boto3.Session) -> None:
    _function(aws)
    _, source_arn = _queue(aws, "mapping-source")
    url, arn = _queue(aws, "failures")
    mapping = aws.client("lambda").create_event_source_mapping(
        EventSourceArn=source_arn, FunctionName=FUNCTION, BatchSize=10
    )
    aws.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(FAILURE_RECORD))
    aws.client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Throttles",
                "Dimensions": [{"Name": "FunctionName", "Value": FUNCTION}],
                "Timestamp": datetime.now(tz=UTC) - timedelta(minutes=2),
                "Value": 4.0,
            }
        ],
    )
    health = collect(_outputs(aws, mapping["UUID"], url, arn), aws)
    assert health.errors == {}
    assert health.mapping is not None and health.mapping.uuid == mapping["UUID"]
    assert [(r.metric, r.value) for r in health.metrics] == [("Throttles", 4.0)]
    assert health.queue_depth is not None and health.queue_depth.visible == 1
    assert [b.batch_size for b in health.failures] == [3]


def test_collect_reads_the_rollups_consumers_mapping_and_how_far_behind_it_is(aws: boto3.Session) -> None:
    _function(aws)
    _function(aws, ROLLUPS_FUNCTION)
    _, source_arn = _queue(aws, "mapping-source")
    url, arn = _queue(aws, "failures")
    mapping = aws.client("lambda").create_event_source_mapping(
        EventSourceArn=source_arn, FunctionName=FUNCTION
    )
    rollups = aws.client("lambda").create_event_source_mapping(
        EventSourceArn=source_arn, FunctionName=ROLLUPS_FUNCTION, BatchSize=100
    )
    aws.client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": "FunctionName", "Value": ROLLUPS_FUNCTION}],
                "Timestamp": datetime.now(tz=UTC) - timedelta(minutes=2),
                "Value": value,
            }
            for name, value in (("IteratorAge", 4_500.0), ("Invocations", 7.0))
        ],
    )
    outputs = replace(_outputs(aws, mapping["UUID"], url, arn), rollups_function_name=ROLLUPS_FUNCTION)
    health = collect(outputs, aws)
    assert health.errors == {}
    assert health.mapping is not None and health.mapping.uuid == mapping["UUID"]
    assert health.rollups_mapping is not None and health.rollups_mapping.uuid == rollups["UUID"]
    assert health.rollups_mapping.batch_size == 100
    trigger = deployed_rollups_trigger(health)
    assert trigger is not None and trigger.running is True
    assert trigger.iterator_age_ms == 4_500 and trigger.behind_ms == 4_500
    assert trigger.last_batch_at is not None

    # A stack deployed before the rollups names no rollups function: nothing to show, nothing wrong.
    before = collect(_outputs(aws, mapping["UUID"], url, arn), aws)
    assert before.rollups_mapping is None and before.errors == {}
    assert deployed_rollups_trigger(before) is None
    # A rollups function without its mapping is said.
    aws.client("lambda").delete_event_source_mapping(UUID=rollups["UUID"])
    orphan = collect(outputs, aws)
    assert "has no event source mapping" in orphan.errors["rollups_trigger"]


def test_collect_reports_an_unreadable_part_and_keeps_the_rest(aws: boto3.Session) -> None:
    url, arn = _queue(aws, "failures")
    health = collect(_outputs(aws, "no-such-mapping", url, arn), aws)
    assert health.mapping is None
    assert "mapping" in health.errors
    assert health.queue_depth is not None and health.queue_depth.total == 0
    assert "failure_queue" not in health.errors


# ------------------------------------------------------------------------- trigger health (stuck)
def test_health_from_mapping_and_metrics() -> None:
    t0 = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    metrics = [
        MetricPoint("Invocations", t0, 3.0),
        MetricPoint("Invocations", t0 + timedelta(minutes=1), 0.0),  # a quiet minute is no batch
        MetricPoint("IteratorAge", t0, 90_000.0),
        MetricPoint("IteratorAge", t0 + timedelta(minutes=1), 250.0),  # the latest counts, not the worst
    ]
    enabled = parse_event_source_mapping(RECORDED_MAPPING)
    assert health_from(enabled, metrics) == TriggerHealth(
        running=True, iterator_age_ms=250, last_batch_at=int(t0.timestamp() * 1000)
    )
    disabled = parse_event_source_mapping({**RECORDED_MAPPING, "State": "Disabled"})
    assert health_from(disabled, []) == TriggerHealth(running=False)
    updating = parse_event_source_mapping({**RECORDED_MAPPING, "State": "Updating"})
    assert health_from(updating, []).running is None
    assert health_from(None, []).running is None


def _stack_with_mapping(session: boto3.Session, state_enabled: bool) -> Settings:
    """A stack whose outputs point at a moto function and mapping; settings naming it."""
    _function(session)
    _, source_arn = _queue(session, "mapping-source")
    mapping = session.client("lambda").create_event_source_mapping(
        EventSourceArn=source_arn, FunctionName=FUNCTION, Enabled=state_enabled
    )
    key = session.client("apigateway").create_api_key(name="k", enabled=True)
    template = json.loads(_stack_template())
    template["Outputs"]["EventSourceMappingId"]["Value"] = mapping["UUID"]
    template["Outputs"]["FunctionName"]["Value"] = FUNCTION
    session.client("cloudformation").create_stack(
        StackName="health",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "ApiKeyIdParam", "ParameterValue": key["id"]}],
    )
    session.client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": FUNCTION}],
                "Timestamp": datetime.now(tz=UTC) - timedelta(minutes=2),
                "Value": 1234.0,
            }
        ],
    )
    return load_settings(stack="health", region=REGION)


def test_trigger_health_of_a_deployed_stack(aws: boto3.Session) -> None:
    settings = _stack_with_mapping(aws, state_enabled=True)
    health = trigger_health(settings, aws)
    assert health.running is True
    assert health.iterator_age_ms == 1234


def test_trigger_health_of_a_disabled_mapping(aws: boto3.Session) -> None:
    settings = _stack_with_mapping(aws, state_enabled=False)
    assert trigger_health(settings, aws).running is False


def test_the_dashboard_reads_a_deployed_trigger_at_most_once_a_period_until_refresh_now(
    aws: boto3.Session,
) -> None:
    """The one cache policy: a deployed stack's trigger is read at most every DEPLOYED_READ_SECONDS by
    the dashboard, and "Refresh now" (clear_caches) reads it again."""
    from backend.dashboard import reads

    settings = _stack_with_mapping(aws, state_enabled=True)
    reads.clear_caches()
    first = reads.cached_trigger_health(settings)
    assert first.running is True
    aws.client("lambda").update_event_source_mapping(UUID=stack_mapping_id(aws), Enabled=False)
    assert reads.cached_trigger_health(settings) == first  # within the period: the cached answer
    reads.clear_caches()
    assert reads.cached_trigger_health(settings).running is False


def stack_mapping_id(session: boto3.Session) -> str:
    outputs = session.client("cloudformation").describe_stacks(StackName="health")["Stacks"][0]["Outputs"]
    return next(o["OutputValue"] for o in outputs if o["OutputKey"] == "EventSourceMappingId")


def test_trigger_health_of_a_missing_stack_is_unknown(aws: boto3.Session) -> None:
    health = trigger_health(load_settings(stack="nope", region=REGION), aws)
    assert health == TriggerHealth(running=None)
