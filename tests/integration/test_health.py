"""Pipeline health against DynamoDB Local: failure-destination messages resolved back to their requests
through the DynamoDB Streams API, the trigger's state, the table's settings, and stuck requests found for
each reason and brought to a final state by a reconcile through the real trigger and processor."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from backend.cli import main
from backend.computed.health import (
    Resolution,
    deployed_report,
    load_health,
    metrics_frame,
    per_minute_frame,
    resolve_batch,
    streams_client,
)
from backend.computed.stuck import ADVICE, StuckReason
from backend.deployed.health import (
    DeployedHealth,
    FailedBatch,
    MetricPoint,
    QueueDepth,
    parse_event_source_mapping,
    parse_failure_message,
)
from backend.local.esm_config import EsmConfig, load_esm_config
from backend.local.local_template import local_template
from backend.local.trigger import Trigger
from backend.operations import Pipeline
from backend.roles import Actor, Role
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY, Settings
from backend.store.actions import Outcome
from backend.store.reader import RequestStore
from backend.template import Template
from tests.processor_events import put_pending_item, read_item
from tests.rollups_workload import create_rollups_table
from tests.seed import make_item, write_items


def _streams(settings: Settings) -> Any:
    return boto3.client(
        "dynamodbstreams",
        endpoint_url=settings.dynamodb_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
    )


def _stream_records(ddb: Any, settings: Settings) -> tuple[str, str, list[dict[str, Any]]]:
    """(stream ARN, shard id, the records of that shard) read straight from the stream."""
    arn = ddb.describe_table(TableName=settings.table)["Table"]["LatestStreamArn"]
    streams = _streams(settings)
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    assert len(shards) == 1, shards  # a new table of DynamoDB Local has one shard
    shard = shards[0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    records: list[dict[str, Any]] = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator)
        if not page["Records"]:
            break
        records.extend(page["Records"])
        iterator = page.get("NextShardIterator")
    return arn, shard, records


def failure_message(
    arn: str, shard: str, start: str, end: str, size: int, arrived: datetime | None = None
) -> dict[str, Any]:
    """The message Lambda sends to an SQS on-failure destination for a DynamoDB stream batch."""
    at = (arrived or datetime.now(tz=UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "requestContext": {
            "requestId": "c9b8fa9f-5a74-4cfe-8b2d-2b3a1d2ea4b1",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:streamdesk-processor",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 1,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": at,
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "approximateArrivalOfFirstRecord": at,
            "approximateArrivalOfLastRecord": at,
            "batchSize": size,
            "streamArn": arn,
        },
    }


def test_a_failure_message_is_resolved_to_the_requests_it_covers(ddb: Any, settings: Settings) -> None:
    ids = [put_pending_item(ddb, settings.table, {"order": n}) for n in range(5)]
    arn, shard, records = _stream_records(ddb, settings)
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in records] == ids
    # A batch of the 2nd to the 4th record was given up on.
    start, end = records[1]["dynamodb"]["SequenceNumber"], records[3]["dynamodb"]["SequenceNumber"]
    batch = parse_failure_message(json.dumps(failure_message(arn, shard, start, end, 3)))

    resolved = resolve_batch(streams_client(settings), batch, int(time.time() * 1000))

    assert resolved.resolution is Resolution.RESOLVED, resolved.detail
    assert resolved.request_ids == tuple(ids[1:4])
    assert resolved.records == 3


def test_a_range_to_the_end_of_an_open_shard_stops_at_its_end(ddb: Any, settings: Settings) -> None:
    ids = [put_pending_item(ddb, settings.table, {"order": n}) for n in range(2)]
    arn, shard, records = _stream_records(ddb, settings)
    last = records[-1]["dynamodb"]["SequenceNumber"]
    beyond = str(int(last) + 1_000)  # a range claiming more than the shard holds
    batch = parse_failure_message(
        failure_message(arn, shard, records[0]["dynamodb"]["SequenceNumber"], beyond, 5)
    )

    resolved = resolve_batch(streams_client(settings), batch, int(time.time() * 1000))

    assert resolved.resolution is Resolution.PARTIAL
    assert resolved.request_ids == tuple(ids)
    assert "end of the range was not reached" in resolved.detail


def test_records_older_than_the_retention_are_reported_gone(ddb: Any, settings: Settings) -> None:
    put_pending_item(ddb, settings.table, {"order": 1})
    arn, shard, records = _stream_records(ddb, settings)
    sequence = records[0]["dynamodb"]["SequenceNumber"]
    old = datetime.now(tz=UTC) - timedelta(hours=25)
    batch = parse_failure_message(failure_message(arn, shard, sequence, sequence, 1, arrived=old))

    resolved = resolve_batch(streams_client(settings), batch, int(time.time() * 1000))

    assert resolved.resolution is Resolution.EXPIRED
    assert resolved.request_ids == ()
    assert "24 hours" in resolved.detail


def test_a_shard_the_stream_no_longer_has_is_reported_gone(ddb: Any, settings: Settings) -> None:
    put_pending_item(ddb, settings.table, {"order": 1})
    arn, _, records = _stream_records(ddb, settings)
    sequence = records[0]["dynamodb"]["SequenceNumber"]
    batch = FailedBatch(
        message_id="m1",
        shard_id="shardId-00000000000000000000-deadbeef",
        start_sequence_number=sequence,
        end_sequence_number=sequence,
        batch_size=1,
        stream_arn=arn,
        first_record_at=None,
        last_record_at=None,
        condition="RecordAgeExceeded",
        function_error=None,
        approximate_invoke_count=None,
        timestamp=None,
    )

    resolved = resolve_batch(streams_client(settings), batch, int(time.time() * 1000))

    assert resolved.resolution is Resolution.EXPIRED, resolved
    assert "24-hour retention" in resolved.detail


def test_the_report_shows_the_table_and_a_trigger_that_never_ran(ddb: Any, settings: Settings) -> None:
    create_rollups_table(ddb, settings.rollups_table)  # as `make up` creates it
    put_pending_item(ddb, settings.table, {"order": 1})
    report = load_health(settings, RequestStore(settings), int(time.time() * 1000))

    assert report.table is not None
    assert report.table.stream_enabled and report.table.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert report.table.ttl_status == "ENABLED" and report.table.ttl_attribute == "ttl"
    assert report.local is not None and report.local.state is None
    assert report.trigger.running is False
    assert report.failures == [] and report.failure_messages == 0
    assert report.rollups_trigger is not None and report.rollups_trigger.running is False
    assert report.activity is not None and not report.activity["value"].any()  # nothing counted yet
    assert not report.errors, report.errors


# ------------------------------------------------------------------------------ with the real trigger
OPERATOR = Actor("ops@example.com", Role.OPERATOR)
MINUTE_MS = 60_000


def _esm(settings: Settings, template: Template, **changes: Any) -> EsmConfig:
    return replace(load_esm_config(local_template(settings, template)), **changes)


def always_raises(event: dict[str, Any], context: Any) -> Any:
    raise RuntimeError("the function is broken")


def test_a_batch_the_trigger_gave_up_on_is_resolved_to_its_requests(
    ddb: Any, settings: Settings, template: Template
) -> None:
    ids = [put_pending_item(ddb, settings.table, {"order": n}) for n in range(3)]
    # One lane, so that the three requests are one batch (with more, their keys may spread over lanes).
    esm = _esm(
        settings,
        template,
        maximum_retry_attempts=0,
        bisect_batch_on_function_error=False,
        parallelization_factor=1,
    )
    with Trigger(settings, template, invoke=always_raises, esm=esm) as trigger:
        trigger.poll_once()

    report = load_health(settings, RequestStore(settings), int(time.time() * 1000))

    assert report.failure_messages == 1
    [failed] = report.failures
    assert failed.resolution is Resolution.RESOLVED, failed.detail
    assert failed.request_ids == tuple(ids)
    assert failed.batch.condition == "RetryAttemptsExhausted"
    assert failed.batch.function_error == "Unhandled"
    assert report.local is not None and report.local.state is not None
    assert report.local.state.function_errors == 1
    assert report.local.state.records_sent_to_failure_destination == 3
    assert report.trigger.running is True  # its heartbeat is fresh
    per_minute = per_minute_frame(report.local.state)
    assert per_minute.groupby("metric")["value"].sum().to_dict() == {"batches": 1, "records": 3, "errors": 1}


def hidden_pending(ddb: Any, table: str, request_id: str, created_at: int) -> None:
    """A PENDING request whose stream records the trigger's filter drops (written PROCESSING, then set
    PENDING): as if its INSERT record were lost or gone from the stream."""
    write_items(ddb, table, [make_item(id=request_id, status="PROCESSING", created_at=created_at)])
    ddb.update_item(
        TableName=table,
        Key={"id": {"S": request_id}},
        UpdateExpression="SET #s = :p, stateBucket = :o",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "PENDING"}, ":o": {"S": f"PENDING:{created_at % 4}"}},
    )


def abandoned_claim(ddb: Any, table: str, request_id: str, now: int) -> None:
    """PROCESSING since 45 minutes, claimed by a stream record whose invocation died."""
    item = make_item(
        id=request_id,
        status="PROCESSING",
        created_at=now - 46 * MINUTE_MS,
        started_at=now - 45 * MINUTE_MS,
        attempts=1,
        steps={"validate": {"at": now - 45 * MINUTE_MS, "attempt": 1, "output": {}}},
    )
    item["claim"] = {"S": "dead-event-id"}
    write_items(ddb, table, [item])


def test_stuck_requests_are_explained_and_reconcile_finishes_them(
    ddb: Any, settings: Settings, template: Template
) -> None:
    now = int(time.time() * 1000)
    hidden_pending(ddb, settings.table, "old-pending", now - 25 * 60 * MINUTE_MS)
    hidden_pending(ddb, settings.table, "lost-pending", now - 10 * MINUTE_MS)
    abandoned_claim(ddb, settings.table, "abandoned", now)
    pipeline = Pipeline.connect(settings)
    with Trigger(settings, template) as trigger:
        trigger.poll_once()  # the trigger is healthy and delivers nothing for them
        reasons = {s.summary.id: s.reason for s in pipeline.stuck()}
        assert reasons == {
            "old-pending": StuckReason.BEYOND_STREAM_RETENTION,
            "lost-pending": StuckReason.RECORD_LOST,
            "abandoned": StuckReason.CLAIM_ABANDONED,
        }
        for reason in reasons.values():
            assert ADVICE[reason]

        results = pipeline.reconcile(OPERATOR)

        assert {r.request_id: r.outcome for r in results} == dict.fromkeys(reasons, Outcome.REDRIVEN)
        trigger.poll_once()
    for request_id in reasons:
        stored = read_item(ddb, settings.table, request_id)
        assert stored["status"] == "SUCCEEDED", (request_id, stored)
        assert stored["redrivenBy"] == OPERATOR.name
    # The abandoned one resumed after its completed step.
    assert read_item(ddb, settings.table, "abandoned")["steps"]["validate"]["attempt"] == 1
    assert pipeline.stuck() == []


def test_a_stopped_trigger_is_the_reason_and_reconcile_leaves_those_alone(
    ddb: Any, settings: Settings, template: Template
) -> None:
    now = int(time.time() * 1000)
    waiting = put_pending_item(ddb, settings.table, {"order": 1}, created_at_ms=now - 10 * MINUTE_MS)
    pipeline = Pipeline.connect(settings)

    # No state file at all: the trigger never ran here.
    [stuck] = pipeline.stuck()
    assert stuck.summary.id == waiting and stuck.reason is StuckReason.TRIGGER_STOPPED
    assert not stuck.fixed_by_reconcile
    assert pipeline.reconcile(OPERATOR) == []
    assert read_item(ddb, settings.table, waiting)["status"] == "PENDING"

    # A trigger that ran and stopped says so in its state file.
    stop = threading.Event()
    stop.set()
    with Trigger(settings, template) as stopped:
        stopped.run(stop)
    state = json.loads(settings.trigger_state_path.read_text())
    assert state["state"] == "Stopped"
    assert [s.reason for s in pipeline.stuck()] == [StuckReason.TRIGGER_STOPPED]

    # A trigger whose process died: its state says Enabled but the heartbeat is a minute old.
    state.update(state="Enabled", heartbeatAt=int(time.time() * 1000) - MINUTE_MS)
    settings.trigger_state_path.write_text(json.dumps(state))
    assert [s.reason for s in pipeline.stuck()] == [StuckReason.TRIGGER_STOPPED]
    report = load_health(settings, RequestStore(settings), int(time.time() * 1000))
    assert report.trigger.running is False

    # Started again, the trigger delivers the waiting record from the stream.
    with Trigger(settings, template) as trigger:
        trigger.poll_once()
    assert read_item(ddb, settings.table, waiting)["status"] == "SUCCEEDED"
    assert pipeline.stuck() == []


def test_streamdesk_reconcile(
    ddb: Any, settings: Settings, template: Template, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for name in ("STREAMDESK_STACK", "STREAMDESK_DYNAMODB_ENDPOINT", "STREAMDESK_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMDESK_SECRETS_FILE", str(settings.data_dir / "no-secrets.toml"))
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(settings.dynamodb_port))
    monkeypatch.setenv("STREAMDESK_TABLE", settings.table)
    monkeypatch.setenv("STREAMDESK_DATA_DIR", str(settings.data_dir))
    now = int(time.time() * 1000)
    abandoned_claim(ddb, settings.table, "abandoned", now)
    with Trigger(settings, template) as trigger:
        trigger.poll_once()

        assert main(["reconcile", "--yes", "--as", "night shift"]) == 0

        out = capsys.readouterr().out
        assert "abandoned" in out and StuckReason.CLAIM_ABANDONED.value in out and "-> hand back" in out
        assert "1 redriven" in out
        trigger.poll_once()
    stored = read_item(ddb, settings.table, "abandoned")
    assert stored["status"] == "SUCCEEDED" and stored["redrivenBy"] == "night shift"
    assert main(["reconcile", "--yes"]) == 0
    assert "no stuck requests" in capsys.readouterr().out


def test_a_deployed_stack_report_resolves_its_queue_messages_through_the_stream(
    ddb: Any, settings: Settings
) -> None:
    """What collect() read from a stack (mapping, metrics, queue) put together with the stream: the
    mapping and metrics come from their recorded API shapes, the stream is DynamoDB Local's."""
    ids = [put_pending_item(ddb, settings.table, {"order": n}) for n in range(2)]
    arn, shard, records = _stream_records(ddb, settings)
    start, end = records[0]["dynamodb"]["SequenceNumber"], records[1]["dynamodb"]["SequenceNumber"]
    message = failure_message(arn, shard, start, end, 2)
    now = datetime.now(tz=UTC)
    deployed = DeployedHealth(
        mapping=parse_event_source_mapping({"UUID": "m-1", "State": "Enabled", "BatchSize": 10}),
        metrics=[
            MetricPoint("IteratorAge", now - timedelta(minutes=2), 90_000.0),
            MetricPoint("IteratorAge", now - timedelta(minutes=1), 1_500.0),
            MetricPoint("Invocations", now - timedelta(minutes=1), 4.0),
        ],
        queue_depth=QueueDepth(visible=1, in_flight=0, delayed=0),
        failures=[parse_failure_message(json.dumps(message), "msg-1")],
        errors={"metrics": "partly readable"},
    )
    table = RequestStore(settings).table_info()

    report = deployed_report(deployed, streams_client(settings), table, None, int(time.time() * 1000))

    assert report.deployed_mode and report.local is None
    assert report.trigger.running is True
    assert report.trigger.iterator_age_ms == 1_500  # the latest, not the largest
    assert report.failure_messages == 1
    [resolved] = report.failures
    assert resolved.resolution is Resolution.RESOLVED and resolved.request_ids == tuple(ids)
    assert resolved.batch.message_id == "msg-1"
    assert report.errors == {"metrics": "partly readable"}
    assert not metrics_frame(deployed).empty
