"""The trigger twin against DynamoDB Local: batching, filters, event shape, the function's environment,
partial and whole-batch failures, retries, the failure destination, checkpoints and the state file.

The function is a test handler loaded by handler string from tests/fixtures_lambda (the real loading
path); it records every invocation into a JSONL file named in its environment.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from backend.clock import now_ms
from backend.local.esm_config import EsmConfig, load_esm_config
from backend.local.local_template import local_template
from backend.local.trigger import Trigger
from backend.settings import Settings
from backend.template import PROJECT_ROOT, Template
from backend.trigger_state import read_failure_destination, read_trigger_state

FIXTURE_DIR = PROJECT_ROOT / "tests" / "fixtures_lambda"
FIXTURE_HANDLER = "trigger_fixture_handlers.handler"


# ------------------------------------------------------------------------------------------- helpers
def fixture_esm(template: Template, settings: Settings, record_path: Path, **changes: Any) -> EsmConfig:
    """The template's mapping, calling the fixture handler, with ``changes`` applied.

    ParallelizationFactor is 1 unless ``changes`` say otherwise: these tests assert the batches of one
    lane, whole-shard order (tests/integration/test_trigger_parallel.py covers concurrent batches).
    """
    changes = {"parallelization_factor": 1, **changes}
    esm = load_esm_config(local_template(settings, template))
    function = replace(
        esm.function,
        code_dir=FIXTURE_DIR,
        handler=FIXTURE_HANDLER,
        environment={**esm.function.environment, "FIXTURE_RECORD_PATH": str(record_path)},
    )
    return replace(esm, function=function, **changes)


def invocations(record_path: Path) -> list[dict[str, Any]]:
    if not record_path.exists():
        return []
    return [json.loads(line) for line in record_path.read_text(encoding="utf-8").splitlines() if line]


def ids_of(invocation: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["Keys"]["id"]["S"] for r in invocation["records"]]


def put_requests(ddb: Any, table: str, ids: list[str], mode: dict[str, str] | None = None) -> None:
    for request_id in ids:
        item = {"id": {"S": request_id}, "status": {"S": "PENDING"}}
        if mode and request_id in mode:
            item["mode"] = {"S": mode[request_id]}
        ddb.put_item(TableName=table, Item=item)


def drain(trigger: Trigger, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """poll_once until ``done`` (the stream may show a write a moment later); fails at the deadline."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the trigger did not deliver in time"
        trigger.poll_once()
        time.sleep(0.05)


def checkpointed(settings: Settings) -> list[str]:
    """The sequence numbers in the checkpoint file (one per shard)."""
    checkpoints = json.loads(settings.checkpoint_path.read_text(encoding="utf-8"))
    return [entry["sequenceNumber"] for shards in checkpoints.values() for entry in shards.values()]


def stream_sequence_numbers(settings: Settings) -> list[str]:
    """Every record's sequence number in the table's stream, read directly (DynamoDB Local numbers
    records across all its tables, so a test cannot predict them)."""
    streams = boto3.client("dynamodbstreams", **settings.boto3_kwargs())
    ddb = boto3.client("dynamodb", **settings.boto3_kwargs())
    arn = ddb.describe_table(TableName=settings.table)["Table"]["LatestStreamArn"]
    sequence_numbers: list[str] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            sequence_numbers += [r["dynamodb"]["SequenceNumber"] for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return sequence_numbers


def seq_of(invocation: dict[str, Any], index: int) -> str:
    return str(invocation["records"][index]["dynamodb"]["SequenceNumber"])


@pytest.fixture()
def record_path(tmp_path: Path) -> Path:
    return tmp_path / "invocations.jsonl"


# --------------------------------------------------------------------------------------------- tests
def test_batches_events_context_and_environment(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    ids = [f"r{i}" for i in range(7)]
    put_requests(ddb, table_name, ids, mode={"r6": "touch"})
    esm = fixture_esm(template, settings, record_path, batch_size=3, filter_patterns=())
    with Trigger(settings, template, esm=esm) as trigger:
        # 7 inserts, then the MODIFY the handler's own update of r6 wrote (no filters here).
        drain(trigger, lambda: sum(len(i["records"]) for i in invocations(record_path)) >= 8)
        stream_arn = trigger.stream_arn

    calls = invocations(record_path)
    assert [len(c["records"]) for c in calls] == [3, 3, 1, 1]
    assert [i for c in calls[:3] for i in ids_of(c)] == ids  # in order, each once
    (own_update,) = calls[3]["records"]
    assert own_update["eventName"] == "MODIFY"
    assert own_update["dynamodb"]["NewImage"]["touched"] == {"BOOL": True}

    record = calls[0]["records"][0]
    assert set(record) == {
        "eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb", "eventSourceARN"
    }  # fmt: skip
    assert record["eventName"] == "INSERT" and record["eventSource"] == "aws:dynamodb"
    assert record["awsRegion"] == settings.region
    assert record["eventSourceARN"] == stream_arn
    assert stream_arn == ddb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    dynamodb = record["dynamodb"]
    assert isinstance(dynamodb["ApproximateCreationDateTime"], int)
    assert abs(dynamodb["ApproximateCreationDateTime"] - time.time()) < 120
    assert dynamodb["Keys"] == {"id": {"S": "r0"}}
    assert dynamodb["NewImage"] == {"id": {"S": "r0"}, "status": {"S": "PENDING"}}
    assert dynamodb["StreamViewType"] == "NEW_AND_OLD_IMAGES" and dynamodb["SizeBytes"] > 0

    context = calls[0]["context"]
    assert context["function_name"] == "streamdesk-local-processor"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"].endswith(":function:streamdesk-local-processor")
    assert context["memory_limit_in_mb"] == "256"
    assert context["log_group_name"] == "/aws/lambda/streamdesk-local-processor"
    assert "[$LATEST]" in context["log_stream_name"]
    assert 25_000 < context["remaining_ms"] <= 30_000  # the template's Timeout (Globals)
    assert len({c["context"]["aws_request_id"] for c in calls}) == len(calls)  # one per invocation

    env = calls[0]["env"]
    assert env["TABLE_NAME"] == table_name and env["MAX_RETRIES"] == "3"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == settings.dynamodb_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == settings.region
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "streamdesk-local-processor"
    assert env["LAMBDA_TASK_ROOT"] == str(FIXTURE_DIR) and env["_HANDLER"] == FIXTURE_HANDLER
    # The handler reached the table through boto3's defaults, i.e. through that environment.
    item = ddb.get_item(TableName=table_name, Key={"id": {"S": "r6"}}, ConsistentRead=True)["Item"]
    assert item["touched"] == {"BOOL": True}


def test_template_filters_drop_the_functions_own_updates(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    key = {"id": {"S": "f1"}}

    def set_status(status: str) -> None:
        ddb.update_item(
            TableName=table_name,
            Key=key,
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}},
        )

    put_requests(ddb, table_name, ["f1"])
    for status in ("PROCESSING", "FAILED", "PENDING", "PROCESSING", "SUCCEEDED"):
        set_status(status)
    ddb.delete_item(TableName=table_name, Key=key)
    esm = fixture_esm(template, settings, record_path)  # the template's two filters
    with Trigger(settings, template, esm=esm) as trigger:
        drain(trigger, lambda: trigger.state()["filteredOut"] >= 5)
        state = trigger.state()

    delivered = [r for c in invocations(record_path) for r in c["records"]]
    assert [(r["eventName"], r["dynamodb"]["NewImage"]["status"]["S"]) for r in delivered] == [
        ("INSERT", "PENDING"),
        ("MODIFY", "PENDING"),  # the redrive FAILED -> PENDING
    ]
    assert delivered[1]["dynamodb"]["OldImage"]["status"]["S"] == "FAILED"
    assert state["filteredOut"] == 5
    # Filtered-out records are checkpointed too: the last one (the REMOVE) is done with.
    all_records = stream_sequence_numbers(settings)
    assert len(all_records) == 7
    assert checkpointed(settings) == [all_records[-1]]


def test_partial_failure_resends_from_the_lowest_failed_record(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    ids = [f"p{i}" for i in range(6)]
    put_requests(ddb, table_name, ids, mode={"p2": "partial-fail-once", "p4": "partial-fail-once"})
    esm = fixture_esm(template, settings, record_path, batch_size=10)
    with Trigger(settings, template, esm=esm) as trigger:
        drain(trigger, lambda: len(invocations(record_path)) >= 2)
        assert trigger.poll_once() == 0
        state = trigger.state()

    calls = invocations(record_path)
    # Lambda checkpoints before the LOWEST failed record and re-sends everything after it, p3 and p5
    # (which succeeded) included.
    assert [ids_of(c) for c in calls] == [ids, ["p2", "p3", "p4", "p5"]]
    assert state["lastBatchResult"] == "OK" and state["batches"] == 2 and state["records"] == 10
    assert state["functionErrors"] == 0
    assert checkpointed(settings) == [seq_of(calls[0], 5)]
    assert read_failure_destination(settings) == []


def test_whole_batch_failure_is_bisected_down_to_the_bad_record(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    ids = ["b0", "b1", "b2", "b3"]
    put_requests(ddb, table_name, ids, mode={"b1": "raise"})
    esm = fixture_esm(template, settings, record_path, batch_size=4, maximum_retry_attempts=1)
    with Trigger(settings, template, esm=esm) as trigger:
        drain(
            trigger,
            lambda: (
                read_failure_destination(settings) != []
                and ["b2", "b3"] in [ids_of(c) for c in invocations(record_path)]
            ),
        )
        state = trigger.state()

    assert [ids_of(c) for c in invocations(record_path)] == [
        ["b0", "b1", "b2", "b3"],  # raises: split
        ["b0", "b1"],  # raises: split
        ["b0"],
        ["b1"],  # raises: cannot split, retried once (MaximumRetryAttempts 1)
        ["b1"],
        ["b2", "b3"],  # the shard moved on
    ]
    (message,) = read_failure_destination(settings)
    info = message["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seq_of(invocations(record_path)[0], 1)
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 4  # 2 as part of larger batches
    assert state["functionErrors"] == 4 and state["recordsSentToFailureDestination"] == 1


def test_retries_exhausted_go_to_the_failure_destination_and_the_shard_moves_on(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    put_requests(ddb, table_name, ["x0", "x1", "x2", "x3"], mode={"x0": "raise"})
    esm = fixture_esm(
        template,
        settings,
        record_path,
        batch_size=2,
        maximum_retry_attempts=2,
        bisect_batch_on_function_error=False,
    )
    with Trigger(settings, template, esm=esm) as trigger:
        drain(trigger, lambda: ["x2", "x3"] in [ids_of(c) for c in invocations(record_path)])
        stream_arn = trigger.stream_arn
        function_arn = trigger.function_arn
        put_requests(ddb, table_name, ["x4"])  # later records flow too
        drain(trigger, lambda: ["x4"] in [ids_of(c) for c in invocations(record_path)])

    assert [ids_of(c) for c in invocations(record_path)] == [
        ["x0", "x1"],
        ["x0", "x1"],
        ["x0", "x1"],  # first try + 2 retries
        ["x2", "x3"],
        ["x4"],
    ]
    (message,) = read_failure_destination(settings)
    assert message["version"] == "1.0"
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert message["requestContext"]["functionArn"] == function_arn
    assert message["requestContext"]["requestId"] == invocations(record_path)[2]["context"]["aws_request_id"]
    assert message["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert message["timestamp"].endswith("Z")
    info = message["DDBStreamBatchInfo"]
    first_call = invocations(record_path)[0]
    assert info["startSequenceNumber"] == seq_of(first_call, 0)
    assert info["endSequenceNumber"] == seq_of(first_call, 1)
    assert info["batchSize"] == 2 and info["streamArn"] == stream_arn
    assert info["shardId"].startswith("shardId-")
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert info["approximateArrivalOfLastRecord"].endswith("Z")
    # The checkpoint passed the batch given up on, and the later ones.
    assert checkpointed(settings) == [seq_of(invocations(record_path)[-1], 0)]


def test_an_empty_identifier_fails_the_whole_batch(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    put_requests(ddb, table_name, ["e0", "e1"], mode={"e1": "bad-identifier"})
    esm = fixture_esm(template, settings, record_path, maximum_retry_attempts=0)
    with Trigger(settings, template, esm=esm) as trigger:
        drain(trigger, lambda: read_failure_destination(settings) != [])

    # Bisected (the whole batch failed), then e1 alone failed with no retries left.
    assert [ids_of(c) for c in invocations(record_path)] == [["e0", "e1"], ["e0"], ["e1"]]
    (message,) = read_failure_destination(settings)
    assert message["DDBStreamBatchInfo"]["batchSize"] == 1
    assert message["responseContext"]["functionError"] is None  # the function returned normally


def test_record_age_limit_gives_up_on_an_always_failing_record(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    put_requests(ddb, table_name, ["old"], mode={"old": "raise"})
    # Retries unlimited (-1): only the age limit ends it. AWS's minimum is 60 s; 1 s keeps the test short.
    esm = fixture_esm(
        template, settings, record_path, maximum_retry_attempts=-1, maximum_record_age_seconds=1
    )
    started = time.monotonic()
    with Trigger(settings, template, esm=esm) as trigger:
        drain(trigger, lambda: read_failure_destination(settings) != [])
    assert time.monotonic() - started < 8
    (message,) = read_failure_destination(settings)
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert len(invocations(record_path)) >= 2  # retried until too old


def test_restart_resumes_from_the_checkpoint(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    put_requests(ddb, table_name, ["c0", "c1", "c2"])
    esm = fixture_esm(template, settings, record_path)
    with Trigger(settings, template, esm=esm) as first:
        drain(first, lambda: len(invocations(record_path)) >= 1)
    put_requests(ddb, table_name, ["c3"])
    with Trigger(settings, template, esm=esm) as second:
        drain(second, lambda: len(invocations(record_path)) >= 2)
        assert second.poll_once() == 0
    assert [ids_of(c) for c in invocations(record_path)] == [["c0", "c1", "c2"], ["c3"]]


def test_state_file_for_the_dashboard(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    assert read_trigger_state(settings) is None
    put_requests(ddb, table_name, ["s0", "s1"], mode={"s1": "partial-fail"})
    esm = fixture_esm(template, settings, record_path, maximum_retry_attempts=0)
    with Trigger(settings, template, esm=esm) as trigger:
        drain(trigger, lambda: read_failure_destination(settings) != [])
        stream_arn = trigger.stream_arn

    state = read_trigger_state(settings)
    assert state is not None
    assert state.stream_arn == stream_arn and state.shards == 1
    assert state.batches == 1 and state.records == 2
    assert state.last_batch_result == "PARTIAL" and state.last_batch_size == 2
    assert state.records_sent_to_failure_destination == 1 and state.function_errors == 0
    # Just written: the age is the time since the record was written (not DynamoDB Local's minute).
    assert isinstance(state.iterator_age_ms, int) and 0 <= state.iterator_age_ms < 5_000
    assert state.mode == "Enabled" and state.is_alive(now_ms()) is True
    assert abs(state.heartbeat_at - time.time() * 1000) < 5_000
    (minute,) = state.per_minute
    assert minute.batches == 1 and minute.records == 2 and minute.errors == 1
    assert minute.minute % 60_000 == 0


def test_run_waits_for_the_batching_window_and_reports_stopped(
    ddb: Any, table_name: str, settings: Settings, template: Template, record_path: Path
) -> None:
    # A wide window next to a short pause: on a loaded 2-core machine the pause can stretch.
    esm = fixture_esm(template, settings, record_path, maximum_batching_window_seconds=4)
    stop = threading.Event()
    trigger = Trigger(settings, template, esm=esm)
    thread = threading.Thread(target=trigger.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while read_trigger_state(settings) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        put_requests(ddb, table_name, ["w0"])
        time.sleep(0.6)  # several polls later, still inside the window
        put_requests(ddb, table_name, ["w1", "w2"])
        while not invocations(record_path):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        state = read_trigger_state(settings)
        assert state is not None and state.is_alive(now_ms()) is True
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert [ids_of(c) for c in invocations(record_path)] == [["w0", "w1", "w2"]]
    final = read_trigger_state(settings)
    assert final is not None and final.mode == "Stopped" and final.is_alive(now_ms()) is False
