"""The local stack follows the template: change a setting in a copy, and the local piece changes with it.

Each test edits a copy of infra/template.yaml (written to tmp_path, as a person would edit the file) and
reads it through the same code the local stack uses: the table definition, the API twin's routes, the
trigger twin's event source mapping settings. Nothing local restates the template, so nothing drifts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from backend.local.apigateway import JSON, ApiDefinition, Route, parse_api
from backend.local.esm_config import INFINITE, EsmConfig, load_esm_config
from backend.local.event_filter import EventFilter
from backend.local.table import ensure_table, table_definition
from backend.template import TABLE_ID, TEMPLATE_PATH, LocalValues, Template


def edited_copy(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """A copy of the template with each ``(old, new)`` text replaced; ``old`` must occur exactly once."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"the template no longer contains exactly one {old!r}"
        text = text.replace(old, new)
    copy = tmp_path / "infra" / "template.yaml"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text, encoding="utf-8")
    return copy


# ---------------------------------------------------------------------------------------------- table
ADD_STATUS_INDEX = (
    "        - AttributeName: createdAt\n          AttributeType: N\n      KeySchema:",
    "        - AttributeName: createdAt\n          AttributeType: N\n"
    "        - AttributeName: status\n          AttributeType: S\n      KeySchema:",
)
INDEX_BODY = (
    "      GlobalSecondaryIndexes:\n",
    "      GlobalSecondaryIndexes:\n"
    "        - IndexName: byStatus\n"
    "          KeySchema:\n"
    "            - AttributeName: status\n"
    "              KeyType: HASH\n"
    "          Projection:\n"
    "            ProjectionType: KEYS_ONLY\n",
)


def test_an_added_index_reaches_the_table_definition(tmp_path: Path) -> None:
    before = table_definition(Template.load())
    after = table_definition(Template.load(edited_copy(tmp_path, ADD_STATUS_INDEX, INDEX_BODY)))
    names = [index["IndexName"] for index in after["GlobalSecondaryIndexes"]]
    assert names == ["byStatus", *[index["IndexName"] for index in before["GlobalSecondaryIndexes"]]]
    assert {"AttributeName": "status", "AttributeType": "S"} in after["AttributeDefinitions"]


def _wait_index_active(ddb: Any, table: str, index: str, timeout: float = 15.0) -> None:
    """Wait for a new index to finish backfilling (CREATING, then ACTIVE, as on AWS)."""
    deadline = time.monotonic() + timeout
    while True:
        indexes = ddb.describe_table(TableName=table)["Table"]["GlobalSecondaryIndexes"]
        status = {i["IndexName"]: i["IndexStatus"] for i in indexes}
        assert index in status, f"{index} was not created: {sorted(status)}"
        if status[index] == "ACTIVE":
            return
        assert time.monotonic() < deadline, f"{index} still {status[index]} after {timeout}s"
        time.sleep(0.2)


def test_an_added_index_is_created_on_an_existing_local_table(
    tmp_path: Path, ddb: Any, table_name: str
) -> None:
    # The fixture's table was made from the real template; the edited copy brings a new index.
    copy = edited_copy(tmp_path, ADD_STATUS_INDEX, INDEX_BODY)
    ddb.put_item(TableName=table_name, Item={"id": {"S": "kept"}, "status": {"S": "PENDING"}})
    ensure_table(ddb, table_name, Template.load(copy, local=LocalValues(refs={TABLE_ID: table_name})))
    _wait_index_active(ddb, table_name, "byStatus")
    found = ddb.query(
        TableName=table_name,
        IndexName="byStatus",
        KeyConditionExpression="#s = :p",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "PENDING"}},
    )["Items"]
    assert [i["id"]["S"] for i in found] == ["kept"]


def test_a_changed_key_reaches_a_new_local_table(tmp_path: Path, ddb: Any, dynamodb_local: Any) -> None:
    copy = edited_copy(
        tmp_path,
        (
            "      KeySchema:\n        - AttributeName: id\n          KeyType: HASH\n"
            "      GlobalSecondaryIndexes:",
            "      KeySchema:\n        - AttributeName: id\n          KeyType: HASH\n"
            "        - AttributeName: createdAt\n          KeyType: RANGE\n      GlobalSecondaryIndexes:",
        ),
    )
    name = f"streamdesk-parity-{tmp_path.name}"[:255]
    template = Template.load(copy, local=LocalValues(refs={TABLE_ID: name}))
    expected = [
        {"AttributeName": "id", "KeyType": "HASH"},
        {"AttributeName": "createdAt", "KeyType": "RANGE"},
    ]
    assert table_definition(template)["KeySchema"] == expected
    try:
        described = ensure_table(ddb, name, template)
        assert described["KeySchema"] == expected
    finally:
        ddb.delete_table(TableName=name)


# ------------------------------------------------------------------------------------------------ API
def _route(api: ApiDefinition, method: str, path: str) -> Route:
    found = api.find_route(method, path)
    assert found is not None, f"no route {method} {path}"
    return found[0]


def test_a_changed_request_template_reaches_the_api_twin(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        (
            '                        ":zero": {"N": "0"}\n',
            '                        ":zero": {"N": "0"},\n'
            '                        "channel": {"S": "$input.params(\'x-channel\')"}\n',
        ),
    )
    original = _route(parse_api(Template.load()), "PUT", "/requests")
    edited = _route(parse_api(Template.load(copy)), "PUT", "/requests")
    assert "channel" not in original.integration.request_templates[JSON].source
    assert (
        '"channel": {"S": "$input.params(\'x-channel\')"}'
        in edited.integration.request_templates[JSON].source
    )


def test_dropping_the_key_requirement_reaches_the_api_twin(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        (
            "              summary: The public fields of one request.\n"
            "              security:\n"
            "                - api_key: []\n",
            "              summary: The public fields of one request.\n",
        ),
    )
    assert _route(parse_api(Template.load()), "GET", "/requests/abc").api_key_required
    assert not _route(parse_api(Template.load(copy)), "GET", "/requests/abc").api_key_required
    assert _route(parse_api(Template.load(copy)), "PUT", "/requests").api_key_required


GET_5XX = (
    '                  "5\\\\d{2}":\n'
    '                    statusCode: "503"\n'
    "                    responseTemplates:\n"
    "                      application/json: "
    '\'{"message": "The request table is unavailable. Retry later."}\'\n'
)


@pytest.mark.parametrize("status", [500, 503])
def test_a_removed_error_mapping_reaches_the_api_twin(tmp_path: Path, status: int) -> None:
    """Without its 5xx entry the GET falls back to the default 200 response: the AWS trap, reproduced."""
    original = _route(parse_api(Template.load()), "GET", "/requests/abc").integration
    edited = _route(parse_api(Template.load(edited_copy(tmp_path, (GET_5XX, "")))), "GET", "/requests/abc")
    chosen = original.select_response(status)
    assert chosen is not None and chosen.status_code == 503
    fallback = edited.integration.select_response(status)
    assert fallback is not None and fallback.selection_pattern is None and fallback.status_code == 200


# ------------------------------------------------------------------------------ event source mapping
def _esm(path: Path = TEMPLATE_PATH) -> EsmConfig:
    return load_esm_config(Template.load(path), path)


def test_a_changed_batch_size_reaches_the_trigger_twin(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        (
            "  StreamBatchSize:\n    Type: Number\n    Default: 10\n",
            "  StreamBatchSize:\n    Type: Number\n    Default: 25\n",
        ),
    )
    assert _esm().batch_size == 10
    assert _esm(copy).batch_size == 25


def test_changed_retries_reach_the_trigger_twin_and_the_function(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        (
            "  StreamMaxRetries:\n    Type: Number\n    Default: 3\n",
            "  StreamMaxRetries:\n    Type: Number\n    Default: 5\n",
        ),
    )
    config = _esm(copy)
    assert config.maximum_retry_attempts == 5
    assert config.retries_exhausted(5) and not config.retries_exhausted(4)
    # The function's own limit is the same parameter, so the two cannot drift apart.
    assert config.function.environment["MAX_RETRIES"] == "5"


def test_removed_retry_limits_bring_back_the_aws_default_locally(tmp_path: Path) -> None:
    """Without MaximumRetryAttempts/MaximumRecordAgeInSeconds, AWS retries until the record expires:
    the twin does the same, so the trap the template avoids is visible locally too."""
    copy = edited_copy(
        tmp_path,
        ("            MaximumRetryAttempts: !Ref StreamMaxRetries\n", ""),
        ("            MaximumRecordAgeInSeconds: !Ref StreamMaxRecordAgeSeconds\n", ""),
    )
    config = _esm(copy)
    assert config.maximum_retry_attempts == INFINITE
    assert config.maximum_record_age_seconds == INFINITE
    assert not config.retries_exhausted(1_000_000)


def _redrive_record() -> dict[str, Any]:
    """The stream MODIFY of a person's redrive: FAILED -> PENDING."""
    return {
        "eventName": "MODIFY",
        "dynamodb": {
            "NewImage": {"id": {"S": "r"}, "status": {"S": "PENDING"}},
            "OldImage": {"id": {"S": "r"}, "status": {"S": "FAILED"}},
        },
    }


def test_a_changed_filter_reaches_the_trigger_twin(tmp_path: Path) -> None:
    modify_filter = (
        '                - Pattern: \'{"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"status": '
        '{"S": ["PENDING"]}}, "OldImage": {"status": {"S": ["FAILED"]}}}}\'\n'
    )
    copy = edited_copy(tmp_path, (modify_filter, ""))
    original, edited = _esm(), _esm(copy)
    assert len(original.filter_patterns) == 2
    assert len(edited.filter_patterns) == 1
    # The redrive's MODIFY passes the template's filters and is dropped by the edited ones.
    assert EventFilter(original.filter_patterns).passes(_redrive_record())
    assert not EventFilter(edited.filter_patterns).passes(_redrive_record())


# ------------------------------------------------------------------------------------------ slow lane
def _slow_lane(path: Path = TEMPLATE_PATH) -> tuple[Any, Any]:
    """(the SQS twin's settings of SlowWorkQueue, the event source twin's mapping) as the local stack
    reads them from a template file."""
    from backend.local.local_template import local_template
    from backend.local.sqs_queues import load_sqs_esm_config, queue_settings
    from backend.settings import Settings

    settings = Settings(table="parity-table", STREAMDESK_API_KEY="test-key-0123456789")
    template = local_template(settings, Template.load(path))
    return queue_settings(template, "SlowWorkQueue"), load_sqs_esm_config(template, path)


def test_a_changed_visibility_timeout_and_receive_count_reach_the_sqs_twin(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        (
            "  SlowWorkVisibilityTimeoutSeconds:\n    Type: Number\n    Default: 360\n",
            "  SlowWorkVisibilityTimeoutSeconds:\n    Type: Number\n    Default: 900\n",
        ),
        (
            "  SlowWorkMaxReceiveCount:\n    Type: Number\n    Default: 5\n",
            "  SlowWorkMaxReceiveCount:\n    Type: Number\n    Default: 7\n",
        ),
    )
    original, _ = _slow_lane()
    edited, esm = _slow_lane(copy)
    assert (original.visibility_timeout, original.max_receive_count) == (360, 5)
    assert (edited.visibility_timeout, edited.max_receive_count) == (900, 7)
    assert edited.dead_letter_queue == "parity-table-SlowWorkDeadLetterQueue"
    # The worker's last delivery is the same parameter, so the two cannot drift apart.
    assert esm.function.environment["SLOW_WORK_MAX_RECEIVES"] == "7"


def test_a_changed_batch_size_and_concurrency_reach_the_event_source_twin(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        (
            "  SlowWorkBatchSize:\n    Type: Number\n    Default: 1\n",
            "  SlowWorkBatchSize:\n    Type: Number\n    Default: 4\n",
        ),
        (
            "  SlowWorkConcurrency:\n    Type: Number\n    Default: 10\n",
            "  SlowWorkConcurrency:\n    Type: Number\n    Default: 3\n",
        ),
    )
    _, original = _slow_lane()
    _, edited = _slow_lane(copy)
    assert (original.batch_size, original.local_pollers) == (1, 10)
    assert (edited.batch_size, edited.local_pollers) == (4, 3)
    assert edited.report_batch_item_failures
    assert edited.queue_id == "SlowWorkQueue"
    assert edited.function.handler == "streamdesk_processor.handler.slow_work_handler"


def test_dropping_partial_batch_responses_reaches_the_event_source_twin(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        (
            "            BatchSize: !Ref SlowWorkBatchSize\n            FunctionResponseTypes:\n"
            "              - ReportBatchItemFailures\n",
            "            BatchSize: !Ref SlowWorkBatchSize\n",
        ),
    )
    _, edited = _slow_lane(copy)
    assert not edited.report_batch_item_failures


def test_a_changed_threshold_reaches_the_processor(tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        (
            "  SlowWorkThresholdMs:\n    Type: Number\n    Default: 1000\n",
            "  SlowWorkThresholdMs:\n    Type: Number\n    Default: 250\n",
        ),
    )
    assert _esm(copy).function.environment["SLOW_WORK_THRESHOLD_MS"] == "250"
    assert _esm().function.environment["SLOW_WORK_THRESHOLD_MS"] == "1000"


def test_parameter_overrides_of_the_local_stack_reach_the_queue_and_the_function() -> None:
    """`STREAMDESK_TEMPLATE_PARAMETERS`, as `sam deploy --parameter-overrides` (the chaos test uses it)."""
    from backend.local.local_template import local_template
    from backend.local.sqs_queues import load_sqs_esm_config, queue_settings
    from backend.settings import Settings

    settings = Settings(
        table="parity-table", STREAMDESK_API_KEY="test-key-0123456789",
        template_parameters='{"SlowWorkVisibilityTimeoutSeconds": "6", "SlowWorkTimeoutSeconds": "5"}',
    )  # fmt: skip
    template = local_template(settings)
    assert queue_settings(template, "SlowWorkQueue").visibility_timeout == 6
    assert load_sqs_esm_config(template).function.timeout_seconds == 5
