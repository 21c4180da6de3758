"""Records that are not work are ignored (TTL deletions, the processor's own updates), checked with the
records DynamoDB Local's stream really carries; and the Lambda entry point wired from the environment."""

from __future__ import annotations

from typing import Any

import pytest
from streamdesk_processor import handler, item
from streamdesk_processor.errors import ConfigError
from streamdesk_processor.item import Status

from backend.local.table import ensure_table
from backend.template import LocalValues, Template
from tests.processor_events import (
    get_image,
    insert_record,
    lambda_context,
    make_processor,
    put_pending_item,
    read_item,
    read_stream_records,
    sequence_numbers,
    sequence_of,
    stream_event,
    stream_record,
    ttl_remove_record,
)


def test_ttl_deletion_and_unknown_records_are_ignored(ddb: Any, table_name: str) -> None:
    request_id = put_pending_item(ddb, table_name, {"n": 1})
    before = get_image(ddb, table_name, request_id)
    records = [
        ttl_remove_record(before),
        stream_record("UNKNOWN_TO_SDK_VERSION", keys={item.ID: before[item.ID]}, old_image=before),
    ]
    response = make_processor(ddb, table_name).handle(stream_event(*records), lambda_context())
    assert response == {"batchItemFailures": []}
    assert get_image(ddb, table_name, request_id) == before


def test_the_processors_own_stream_records_change_nothing(
    ddb: Any, dynamodb_endpoint: str, table_name: str
) -> None:
    processor = make_processor(ddb, table_name)
    ok = put_pending_item(ddb, table_name, {"n": 1})
    flaky = put_pending_item(ddb, table_name, {"simulate": {"fail": "t", "transient": True, "failTimes": 1}})
    ko = put_pending_item(ddb, table_name, {"simulate": {"fail": "declined"}})
    inserts = read_stream_records(dynamodb_endpoint, table_name)
    assert [record["eventName"] for record in inserts] == ["INSERT"] * 3
    processor.handle(stream_event(*inserts), lambda_context())
    statuses = [read_item(ddb, table_name, rid)[item.STATUS] for rid in (ok, flaky, ko)]
    assert statuses == [Status.SUCCEEDED, Status.PENDING, Status.FAILED]

    own = [r for r in read_stream_records(dynamodb_endpoint, table_name) if r["eventName"] == "MODIFY"]
    # Claims, step records, outcomes, and the transient hand-back (PROCESSING -> PENDING).
    assert len(own) >= 3 + 4 + 2
    assert any(
        r["dynamodb"]["OldImage"][item.STATUS]["S"] == Status.PROCESSING
        and r["dynamodb"]["NewImage"][item.STATUS]["S"] == Status.PENDING
        for r in own
    )
    before = {rid: get_image(ddb, table_name, rid) for rid in (ok, flaky, ko)}

    response = processor.handle(stream_event(*own), lambda_context())

    assert response == {"batchItemFailures": []}
    assert {rid: get_image(ddb, table_name, rid) for rid in (ok, flaky, ko)} == before


def test_a_real_redrive_record_is_processed(ddb: Any, dynamodb_endpoint: str, table_name: str) -> None:
    processor = make_processor(ddb, table_name)
    request_id = put_pending_item(
        ddb, table_name, {"simulate": {"fail": "once", "failTimes": 1, "failAtStep": 2}}
    )
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.FAILED
    seen = len(read_stream_records(dynamodb_endpoint, table_name))
    ddb.update_item(
        TableName=table_name,
        Key={item.ID: {"S": request_id}},
        UpdateExpression="SET #s = :pending, #o = :open",
        ConditionExpression="#s = :failed",
        ExpressionAttributeNames={"#s": item.STATUS, "#o": item.STATE_BUCKET},
        ExpressionAttributeValues={
            ":pending": {"S": Status.PENDING.value},
            ":failed": {"S": Status.FAILED.value},
            ":open": {"S": "PENDING:0"},
        },
    )
    (redrive_record,) = read_stream_records(dynamodb_endpoint, table_name)[seen:]
    assert processor.handle(stream_event(redrive_record), lambda_context()) == {"batchItemFailures": []}
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.ATTEMPTS] == 2


@pytest.fixture()
def function_env(monkeypatch: pytest.MonkeyPatch, dynamodb_endpoint: str) -> pytest.MonkeyPatch:
    """The environment the local trigger (or Lambda) gives the function, minus the table."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("RETENTION_DAYS", "2")
    monkeypatch.setenv("MAX_RETRIES", "3")
    monkeypatch.setenv("ALLOW_SIMULATE", "true")  # as the local stack's template gives it
    return monkeypatch


def test_lambda_handler_follows_the_table_in_the_environment(
    function_env: pytest.MonkeyPatch, ddb: Any, table_name: str
) -> None:
    second_table = f"{table_name}-b"
    ensure_table(ddb, second_table, Template.load(local=LocalValues(refs={"RequestsTable": second_table})))
    try:
        for table in (table_name, second_table):
            function_env.setenv("TABLE_NAME", table)
            request_id = put_pending_item(ddb, table, {"n": 1})
            response = handler.lambda_handler(
                stream_event(insert_record(ddb, table, request_id)), lambda_context()
            )
            assert response == {"batchItemFailures": []}
            done = read_item(ddb, table, request_id)
            assert done[item.STATUS] == Status.SUCCEEDED
            assert done[item.TTL] - int(done[item.FINISHED_AT]) // 1000 in (2 * 86_400, 2 * 86_400 - 1)
        assert handler.get_processor().config.table_name == second_table
        assert handler.get_processor() is handler.get_processor()  # built once per environment
    finally:
        ddb.delete_table(TableName=second_table)


def test_lambda_handler_reports_every_record_when_every_record_failed(
    function_env: pytest.MonkeyPatch, ddb: Any, table_name: str
) -> None:
    function_env.setenv("TABLE_NAME", table_name)
    request_id = put_pending_item(ddb, table_name, {"simulate": {"fail": "t", "transient": True}})
    record = insert_record(ddb, table_name, request_id)
    # Reported, not raised: a raise would make Lambda bisect at once, without backoff or a retry count.
    assert sequence_numbers(handler.lambda_handler(stream_event(record), lambda_context())) == [
        sequence_of(record)
    ]


def test_lambda_handler_without_table_is_a_config_error(function_env: pytest.MonkeyPatch) -> None:
    function_env.delenv("TABLE_NAME", raising=False)
    with pytest.raises(ConfigError, match="TABLE_NAME"):
        handler.lambda_handler(stream_event(), lambda_context())
