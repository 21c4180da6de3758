"""infra/template.yaml: lint-clean, and every AWS trap the tests below name avoided.

Each test names the property that a deploy would get wrong without it; parameter defaults are resolved
through backend.template so the values checked are those a plain ``make deploy`` uses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import streamdesk_processor.item as item
from streamdesk_rollups import metrics, schema
from streamdesk_rollups.config import ROLLUP_RETENTION_DAYS, ROLLUP_WRITE_SHARDS, ROLLUPS_TABLE

from backend.deployed.stack import OPTIONAL_OUTPUT_NAMES, OUTPUT_NAMES
from backend.template import (
    API_ID,
    FAILURE_QUEUE_ID,
    FUNCTION_ID,
    ROLLUPS_FUNCTION_ID,
    ROLLUPS_STREAM_EVENT_ID,
    ROLLUPS_TABLE_ID,
    STREAM_EVENT_ID,
    TABLE_ID,
    TEMPLATE_PATH,
    Intrinsic,
    Template,
)

ESCAPE_CALL = "$util.escapeJavaScript("
# The documented remedy for escapeJavaScript's \' (not valid JSON), exactly as it must follow each call.
REPLACE_QUOTE = """.replaceAll("\\\\'", "'")"""


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


def _api_paths(template: Template) -> dict[str, Any]:
    paths: dict[str, Any] = template.properties(API_ID)["DefinitionBody"]["paths"]
    return paths


def _integration(template: Template, path: str, method: str) -> dict[str, Any]:
    integration: dict[str, Any] = _api_paths(template)[path][method]["x-amazon-apigateway-integration"]
    return integration


ROUTES = [("/requests", "put"), ("/requests/{id}", "get")]
CANCEL = ("/requests/{id}", "delete")
ALL_ROUTES = [*ROUTES, CANCEL]


def _mapping(template: Template) -> dict[str, Any]:
    event = template.properties(FUNCTION_ID)["Events"][STREAM_EVENT_ID]
    assert event["Type"] == "DynamoDB"
    properties: dict[str, Any] = event["Properties"]
    return properties


def _vtl_templates(template: Template) -> dict[str, str]:
    """Every request and response mapping template of every route, by a readable name."""
    found: dict[str, str] = {}
    for path, method in ALL_ROUTES:
        integration = _integration(template, path, method)
        for content_type, text in integration.get("requestTemplates", {}).items():
            found[f"{method} {path} request {content_type}"] = text
        for selection, response in integration.get("responses", {}).items():
            for content_type, text in response.get("responseTemplates", {}).items():
                found[f"{method} {path} response {selection} {content_type}"] = text
    return found


# ------------------------------------------------------------------------------------------ cfn-lint
def test_cfn_lint_finds_nothing() -> None:
    # cfn-lint is a dev dependency installed next to this interpreter; missing it is a failure, not a skip.
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    assert cfn_lint.is_file(), f"cfn-lint not installed at {cfn_lint} (pip install -e '.[dev]')"
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


# ---------------------------------------------------------------------------------------------- table
def test_table_streams_both_images_with_ttl_on_demand_encrypted_and_recoverable(template: Template) -> None:
    table = template.properties(TABLE_ID)
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": item.TTL, "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # The table holds the requests: a stack deletion or replacement must not take them with it.
    assert template.resource(TABLE_ID)["DeletionPolicy"] == "Retain"
    assert template.resource(TABLE_ID)["UpdateReplacePolicy"] == "Retain"


def test_table_keys_and_indexes_use_the_item_names(template: Template) -> None:
    table = template.properties(TABLE_ID)
    assert table["KeySchema"] == [{"AttributeName": item.ID, "KeyType": "HASH"}]
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert indexes["byTime"]["KeySchema"] == [
        {"AttributeName": item.TIME_BUCKET, "KeyType": "HASH"},
        {"AttributeName": item.CREATED_AT, "KeyType": "RANGE"},
    ]
    assert indexes["byState"]["KeySchema"] == [
        {"AttributeName": item.STATE_BUCKET, "KeyType": "HASH"},
        {"AttributeName": item.CREATED_AT, "KeyType": "RANGE"},
    ]
    known = {value for name, value in vars(item).items() if name.isupper() and isinstance(value, str)}
    for index in indexes.values():
        assert set(index["Projection"]["NonKeyAttributes"]) <= known, index["IndexName"]


# ------------------------------------------------------------------------------ event source mapping
def test_mapping_retries_are_finite_with_defaults_resolved(template: Template) -> None:
    mapping = _mapping(template)
    retries = int(mapping["MaximumRetryAttempts"])
    record_age = int(mapping["MaximumRecordAgeInSeconds"])
    assert 0 <= retries <= 10_000
    assert 60 <= record_age <= 604_800  # -1 would mean "until the record expires": a day of blocked shard
    # And no deploy-time parameter can bring the infinite -1 back.
    parameters = template.raw["Parameters"]
    assert mapping_parameter(template, "MaximumRetryAttempts") == "StreamMaxRetries"
    assert int(parameters["StreamMaxRetries"]["MinValue"]) >= 0
    assert mapping_parameter(template, "MaximumRecordAgeInSeconds") == "StreamMaxRecordAgeSeconds"
    assert int(parameters["StreamMaxRecordAgeSeconds"]["MinValue"]) >= 60
    # The processor's own retry limit is the same parameter.
    variables = template.properties(FUNCTION_ID)["Environment"]["Variables"]
    assert int(variables["MAX_RETRIES"]) == retries


def mapping_parameter(template: Template, key: str) -> str | None:
    """The parameter a raw (unresolved) mapping property refers to, if it is a !Ref."""
    raw = template.resource(FUNCTION_ID)["Properties"]["Events"][STREAM_EVENT_ID]["Properties"][key]
    return str(raw.value) if isinstance(raw, Intrinsic) and raw.name == "Ref" else None


def test_mapping_bisects_reports_item_failures_and_has_a_failure_destination(template: Template) -> None:
    mapping = _mapping(template)
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    on_failure = mapping["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert on_failure["Destination"] == template.get_att(FAILURE_QUEUE_ID, "Arn")
    assert mapping["Stream"] == template.get_att(TABLE_ID, "StreamArn")


def test_mapping_filters_exactly_new_and_redriven_requests(template: Template) -> None:
    patterns = [json.loads(f["Pattern"]) for f in _mapping(template)["FilterCriteria"]["Filters"]]
    status = {item.STATUS: {"S": [item.Status.PENDING.value]}}
    assert patterns == [
        {"eventName": ["INSERT"], "dynamodb": {"NewImage": status}},
        {
            "eventName": ["MODIFY"],
            "dynamodb": {"NewImage": status, "OldImage": {item.STATUS: {"S": [item.Status.FAILED.value]}}},
        },
    ]


# ------------------------------------------------------------------------------------------------ API
def test_put_keys_on_extended_request_id_and_never_overwrites(template: Template) -> None:
    text = _integration(template, "/requests", "put")["requestTemplates"]["application/json"]
    assert "#set($id = $context.extendedRequestId)" in text
    assert '"Key": {"id": {"S": "$id"}}' in text
    # $context.requestId can be set by a client (x-amzn-RequestId): it must not reach the item at all.
    assert "$context.requestId" not in text
    assert "#set($condition = 'attribute_not_exists(id)')" in text
    assert '"ConditionExpression": "$condition"' in text


def _escape_calls(text: str) -> list[tuple[int, str]]:
    """(position, what follows the call's closing parenthesis) for each escapeJavaScript call."""
    calls = []
    start = text.find(ESCAPE_CALL)
    while start != -1:
        depth, index = 1, start + len(ESCAPE_CALL)
        while depth and index < len(text):
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            index += 1
        calls.append((start, text[index : index + len(REPLACE_QUOTE)]))
        start = text.find(ESCAPE_CALL, index)
    return calls


def test_every_escape_javascript_is_followed_by_the_quote_fix(template: Template) -> None:
    templates = _vtl_templates(template)
    total = 0
    for name, text in templates.items():
        for position, following in _escape_calls(text):
            total += 1
            assert following == REPLACE_QUOTE, f"{name} at {position}: {following!r}"
    # The PUT body and the GET id at least: a template that stopped escaping would pass vacuously.
    assert total >= 2


def test_the_escape_check_catches_a_missing_fix() -> None:
    bad = '{"a": "$util.escapeJavaScript($input.params(\'id\'))"}'
    assert _escape_calls(bad)[0][1] != REPLACE_QUOTE
    good = '{"a": "$util.escapeJavaScript($input.params(\'id\')).replaceAll("\\\\\'", "\'")"}'
    assert _escape_calls(good)[0][1] == REPLACE_QUOTE


@pytest.mark.parametrize(("path", "method"), ALL_ROUTES)
def test_dynamodb_errors_are_mapped_to_4xx_and_5xx(template: Template, path: str, method: str) -> None:
    responses = _integration(template, path, method)["responses"]
    patterns = {key: re.compile(key) for key in responses if key != "default"}

    def selected(code: str) -> str:
        matching = [key for key, regex in patterns.items() if regex.fullmatch(code)]
        assert len(matching) == 1, f"{code}: {matching}"
        return matching[0]

    for code in ("400", "413"):
        assert responses[selected(code)]["statusCode"].startswith("4")
    for code in ("500", "503"):
        assert responses[selected(code)]["statusCode"].startswith("5")
    # The success path stays on the default response.
    assert not any(regex.fullmatch("200") for regex in patterns.values())
    assert responses["default"]["statusCode"] == ("202" if method == "put" else "200")


@pytest.mark.parametrize(("path", "method"), ALL_ROUTES)
def test_both_routes_require_the_api_key(template: Template, path: str, method: str) -> None:
    body = template.properties(API_ID)["DefinitionBody"]
    operation = body["paths"][path][method]
    schemes = body["components"]["securitySchemes"]
    required = [name for requirement in operation["security"] for name in requirement]
    assert required, f"{method} {path} has no security requirement"
    for name in required:
        assert schemes[name] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    # Content types without a template are refused (415), never passed through to DynamoDB as is.
    assert _integration(template, path, method)["passthroughBehavior"] in ("never", "when_no_templates")


def _member(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, f"{pattern} not in {text}"
    return match.group(1)


def names_of(names: dict[str, str], attribute: str) -> str:
    """The placeholder (``#status``) that an ExpressionAttributeNames map gives an attribute."""
    return next(placeholder for placeholder, name in names.items() if name == attribute)


def test_vtl_attribute_names_match_the_item_module(template: Template) -> None:
    put = _integration(template, "/requests", "put")["requestTemplates"]["application/json"]
    assert f'"Key": {{"{item.ID}": {{"S": "$id"}}}}' in put
    names = json.loads(_member(r'"ExpressionAttributeNames": (\{[^}]*\})', put))
    update = _member(r'"UpdateExpression": "SET ([^"]*)"', put)
    assignments = re.findall(r"([#\w]+) = (if_not_exists\([#\w]+, :\w+\))", update)
    assert ", ".join(f"{name} = {value}" for name, value in assignments) == update  # nothing else set
    written = [names.get(name, name) for name, _ in assignments]
    assert written == [
        item.REQUEST,
        item.STATUS,
        item.STATE_BUCKET,
        item.TIME_BUCKET,
        item.CREATED_AT,
        item.UPDATED_AT,
        item.ATTEMPTS,
    ]
    values = dict(assignments)
    assert values[names_of(names, item.STATUS)] == f"if_not_exists({names_of(names, item.STATUS)}, :pending)"
    assert f'":pending": {{"S": "{item.Status.PENDING.value}"}}' in put
    assert f'":stateBucket": {{"S": "{item.Status.PENDING.value}{item.BUCKET_SEPARATOR}$shard"}}' in put
    assert f'":timeBucket": {{"S": "$day{item.BUCKET_SEPARATOR}$shard"}}' in put
    assert f"/ {item.MS_PER_DAY}" in put

    get = _integration(template, "/requests/{id}", "get")
    request = get["requestTemplates"]["application/json"]
    assert f'"Key": {{"{item.ID}": {{"S": ' in request
    # The key line holds VTL, so the two JSON members are read on their own.
    names = json.loads(_member(r'"ExpressionAttributeNames": (\{[^}]*\})', request))
    expression = _member(r'"ProjectionExpression": "([^"]*)"', request)
    projected = [names.get(n.strip(), n.strip()) for n in expression.split(",")]
    assert set(projected) == set(item.PUBLIC_FIELDS)
    response = get["responses"]["default"]["responseTemplates"]["application/json"]
    read = set(re.findall(r"\$!?item\.(\w+)", response))
    assert read <= set(item.PUBLIC_FIELDS), read - set(item.PUBLIC_FIELDS)


def test_cancel_is_one_conditional_update_in_the_item_module_names(template: Template) -> None:
    cancel = _integration(template, *CANCEL)
    assert str(cancel["uri"]).endswith(":dynamodb:action/UpdateItem")
    request = cancel["requestTemplates"]["application/json"]
    assert '"ConditionExpression": "#s = :pending AND (attribute_not_exists(#a) OR #a = :zero)"' in request
    names = json.loads(_member(r'"ExpressionAttributeNames": (\{[^}]*\})', request))
    assert names == {
        "#s": item.STATUS,
        "#a": item.ATTEMPTS,
        "#b": item.STATE_BUCKET,
        "#u": item.UPDATED_AT,
        "#f": item.FINISHED_AT,
        "#ttl": item.TTL,
        "#trail": item.TRAIL,
    }
    assert f'":pending": {{"S": "{item.Status.PENDING.value}"}}' in request
    assert f'":cancelled": {{"S": "{item.Status.CANCELLED.value}"}}' in request
    assert f'":bucket": {{"S": "{item.Status.CANCELLED.value}{item.BUCKET_SEPARATOR}$shard"}}' in request
    entry_keys = re.findall(r'"(\w+)": \{"[SN]": "[^"]*"\}', _member(r'":entry": (.*)', request))
    assert entry_keys == [item.TRAIL_AT, item.TRAIL_BY, item.TRAIL_ACTION, item.TRAIL_TEXT]
    assert f'"{item.TRAIL_ACTION}": {{"S": "{item.TrailAction.CANCEL.value}"}}' in request
    assert f'"{item.TRAIL_BY}": {{"S": "{item.TRAIL_BY_API}"}}' in request
    # A refusal returns the item as it is: none is 404, one is 409 with its status.
    assert '"ReturnValuesOnConditionCheckFailure": "ALL_OLD"' in request
    refused = cancel["responses"]["4\\d{2}"]["responseTemplates"]["application/json"]
    assert "$context.responseOverride.status = 409" in refused
    assert "$context.responseOverride.status = 404" in refused


def test_the_closed_retention_reaches_the_cancel_ttl(template: Template) -> None:
    request = _integration(template, *CANCEL)["requestTemplates"]["application/json"]
    days = template.int_parameter("ClosedRetentionDays")
    assert days == 30
    assert f"#set($ttl = $now / 1000 + {days} * 86400)" in request


# -------------------------------------------------------------------------------------- permissions
def _statements(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """(logical id, statement) for every inline policy statement in the template."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, resource in template.raw["Resources"].items():
        properties = template.properties(logical_id)
        documents: list[Any] = []
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in properties.get("Policies", [])]
        if resource["Type"] == "AWS::Serverless::Function":
            policies = properties.get("Policies", [])
            documents += policies if isinstance(policies, list) else [policies]
        for document in documents:
            if isinstance(document, dict) and "Statement" in document:
                found += [(logical_id, s) for s in document["Statement"]]
    return found


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def test_no_wildcard_or_table_wide_dangerous_action_is_granted(template: Template) -> None:
    statements = _statements(template)
    assert len(statements) >= 4
    forbidden = {"dynamodb:UpdateTable", "dynamodb:DeleteTable", "dynamodb:Scan"}
    for logical_id, statement in statements:
        actions = _as_list(statement["Action"])
        assert not any("*" in action for action in actions), (logical_id, actions)
        assert not forbidden & set(actions), (logical_id, actions)
        if statement.get("Effect") == "Allow" and not set(actions) <= RESOURCELESS_ACTIONS:
            assert "*" not in _as_list(statement.get("Resource", "*")), logical_id


# Actions that IAM authorises on no resource ARN at all: "*" is their only possible resource.
RESOURCELESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_the_function_has_its_own_role_so_sam_adds_no_managed_policy(template: Template) -> None:
    function = template.properties("ProcessorFunction")
    assert function["Role"] == template.get_att("ProcessorRole", "Arn")
    assert "Policies" not in function  # SAM would add managed policies (stream actions on "*") with these
    role = template.properties("ProcessorRole")
    assert "ManagedPolicyArns" not in role
    actions = {a for _, st in _statements(template) if _ == "ProcessorRole" for a in _as_list(st["Action"])}
    assert actions == {
        "dynamodb:UpdateItem", "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
        "dynamodb:ListStreams", "sqs:SendMessage", "logs:CreateLogStream", "logs:PutLogEvents",
        *RESOURCELESS_ACTIONS,
    }  # fmt: skip


def test_the_api_role_can_only_put_and_get_on_the_table(template: Template) -> None:
    statements = [s for logical_id, s in _statements(template) if logical_id == "ApiDynamoDbRole"]
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    assert sorted(_as_list(statement["Action"])) == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert _as_list(statement["Resource"]) == [template.get_att(TABLE_ID, "Arn")]
    # And both integrations assume exactly that role.
    for path, method in ROUTES:
        assert _integration(template, path, method)["credentials"] == template.get_att(
            "ApiDynamoDbRole", "Arn"
        )


# --------------------------------------------------------------------------------- outputs, operations
def test_the_cancel_role_can_only_update_items_of_the_table(template: Template) -> None:
    statements = [s for logical_id, s in _statements(template) if logical_id == "ApiCancelRole"]
    assert len(statements) == 1
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    assert _as_list(statement["Action"]) == ["dynamodb:UpdateItem"]
    assert _as_list(statement["Resource"]) == [template.get_att(TABLE_ID, "Arn")]
    assert _integration(template, *CANCEL)["credentials"] == template.get_att("ApiCancelRole", "Arn")


def test_every_output_the_backend_reads_exists(template: Template) -> None:
    outputs = template.raw["Outputs"]
    missing = {*OUTPUT_NAMES.values(), *OPTIONAL_OUTPUT_NAMES.values()} - set(outputs)
    assert not missing
    # SAM names the mapping it generates <function id><event id>; the output must reference it.
    assert outputs["EventSourceMappingId"]["Value"] == Intrinsic("Ref", f"{FUNCTION_ID}{STREAM_EVENT_ID}")


def _alarm(template: Template, namespace: str, metric: str) -> dict[str, Any]:
    alarms = [
        template.properties(logical_id)
        for logical_id, resource in template.raw["Resources"].items()
        # The slow lane's dead-letter alarm is checked by its own test.
        if resource["Type"] == "AWS::CloudWatch::Alarm" and logical_id != "SlowWorkDeadLetterAlarm"
    ]
    # Metric-math alarms (no Namespace of their own) are checked by their own tests.
    matching = [a for a in alarms if a.get("Namespace") == namespace and a.get("MetricName") == metric]
    assert len(matching) == 1, f"{namespace} {metric}: {len(matching)} alarms"
    return matching[0]


def test_alarms_watch_lag_errors_failed_batches_and_api_5xx(template: Template) -> None:
    function = [{"Name": "FunctionName", "Value": template.ref(FUNCTION_ID)}]
    assert _alarm(template, "AWS/Lambda", "IteratorAge")["Dimensions"] == function
    assert _alarm(template, "AWS/Lambda", "IteratorAge")["Statistic"] == "Maximum"
    assert _alarm(template, "AWS/Lambda", "Errors")["Dimensions"] == function
    queue = _alarm(template, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert queue["Dimensions"] == [
        {"Name": "QueueName", "Value": template.get_att(FAILURE_QUEUE_ID, "QueueName")}
    ]
    api = _alarm(template, "AWS/ApiGateway", "5XXError")
    # API Gateway publishes per API *name* and stage: the alarm must name this API's.
    api_properties = template.properties(API_ID)
    assert {d["Name"]: d["Value"] for d in api["Dimensions"]} == {
        "ApiName": api_properties["Name"],
        "Stage": api_properties["StageName"],
    }


def test_tracing_and_access_logging_are_on(template: Template) -> None:
    function_tracing = template.properties(FUNCTION_ID).get("Tracing") or template.raw["Globals"][
        "Function"
    ].get("Tracing")
    assert function_tracing == "Active"
    api = template.properties(API_ID)
    assert api["TracingEnabled"] is True
    log_group = template.resource(API_ID)["Properties"]["AccessLogSetting"]["DestinationArn"]
    assert isinstance(log_group, Intrinsic) and log_group.name == "Fn::GetAtt"
    assert template.resource(log_group.value[0])["Type"] == "AWS::Logs::LogGroup"
    assert "$context.extendedRequestId" in api["AccessLogSetting"]["Format"]


def test_usage_plan_throttles_the_key_on_this_api(template: Template) -> None:
    plans = [
        logical_id
        for logical_id, resource in template.raw["Resources"].items()
        if resource["Type"] == "AWS::ApiGateway::UsagePlan"
    ]
    assert len(plans) == 1
    plan = template.properties(plans[0])
    assert int(plan["Throttle"]["RateLimit"]) > 0
    assert int(plan["Throttle"]["BurstLimit"]) >= int(plan["Throttle"]["RateLimit"])
    assert plan["ApiStages"] == [{"ApiId": template.ref(API_ID), "Stage": template.parameter("StageName")}]
    links = [
        template.properties(logical_id)
        for logical_id, resource in template.raw["Resources"].items()
        if resource["Type"] == "AWS::ApiGateway::UsagePlanKey"
    ]
    assert links == [
        {"KeyId": template.ref("ApiKey"), "KeyType": "API_KEY", "UsagePlanId": template.ref(plans[0])}
    ]
    # The stage throttles too (all keys together), so one client cannot starve the table.
    (method_settings,) = template.properties(API_ID)["MethodSettings"]
    assert int(method_settings["ThrottlingRateLimit"]) > 0


# -------------------------------------------------------------------------------------------- rollups
def _rollups_mapping(template: Template) -> dict[str, Any]:
    event = template.properties(ROLLUPS_FUNCTION_ID)["Events"][ROLLUPS_STREAM_EVENT_ID]
    assert event["Type"] == "DynamoDB"
    properties: dict[str, Any] = event["Properties"]
    return properties


def test_rollups_table_uses_the_schema_names_expires_and_is_kept(template: Template) -> None:
    table = template.properties(ROLLUPS_TABLE_ID)
    assert table["KeySchema"] == [
        {"AttributeName": schema.PK, "KeyType": "HASH"},
        {"AttributeName": schema.SK, "KeyType": "RANGE"},
    ]
    types = {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]}
    assert types == {schema.PK: "S", schema.SK: "N"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": schema.TTL, "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert template.resource(ROLLUPS_TABLE_ID)["DeletionPolicy"] == "Retain"


def test_rollups_mapping_applies_a_shards_batches_in_order_all_or_nothing(template: Template) -> None:
    mapping = _rollups_mapping(template)
    assert mapping["Stream"] == template.get_att(TABLE_ID, "StreamArn")
    assert int(mapping["ParallelizationFactor"]) == 1  # the ledger relies on one batch per shard at a time
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert "FilterCriteria" not in mapping  # every transition counts, the function's own updates too
    # Finite: at most as long as the stream keeps a record, then the batch goes to its own queue.
    assert 0 <= int(mapping["MaximumRetryAttempts"]) <= 10_000
    assert 60 <= int(mapping["MaximumRecordAgeInSeconds"]) <= 86_400
    on_failure = mapping["DestinationConfig"]["OnFailure"]
    assert on_failure == {"Type": "SQS", "Destination": template.get_att("RollupsFailureQueue", "Arn")}


def test_rollups_function_gets_its_table_retention_and_shards_from_the_template(template: Template) -> None:
    variables = template.properties(ROLLUPS_FUNCTION_ID)["Environment"]["Variables"]
    assert variables[ROLLUPS_TABLE] == template.ref(ROLLUPS_TABLE_ID)
    raw = template.resource(ROLLUPS_FUNCTION_ID)["Properties"]["Environment"]["Variables"]
    assert raw[ROLLUP_RETENTION_DAYS] == Intrinsic("Ref", "RollupRetentionDays")
    assert raw[ROLLUP_WRITE_SHARDS] == Intrinsic("Ref", "RollupWriteShards")
    parameters = template.raw["Parameters"]
    assert int(parameters["RollupRetentionDays"]["MinValue"]) >= 1
    assert (
        1
        <= int(parameters["RollupWriteShards"]["MinValue"])
        <= int(parameters["RollupWriteShards"]["MaxValue"])
        <= 64
    )
    assert variables[metrics.SERVICE_VARIABLE] == template.ref("AWS::StackName")


def test_rollups_role_names_every_resource_and_cannot_touch_the_requests(template: Template) -> None:
    function = template.properties(ROLLUPS_FUNCTION_ID)
    assert function["Role"] == template.get_att("RollupsRole", "Arn")
    assert "Policies" not in function
    statements = {s["Sid"]: s for logical_id, s in _statements(template) if logical_id == "RollupsRole"}
    assert set(_as_list(statements["ApplyDeltas"]["Action"])) == {
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",
    }
    assert _as_list(statements["ApplyDeltas"]["Resource"]) == [template.get_att(ROLLUPS_TABLE_ID, "Arn")]
    assert _as_list(statements["ReadStream"]["Resource"]) == [f"{template.get_att(TABLE_ID, 'Arn')}/stream/*"]
    table_arn = template.get_att(TABLE_ID, "Arn")
    for statement in statements.values():
        assert table_arn not in _as_list(statement["Resource"])  # the stream only, never the items
    logs = _as_list(statements["WriteOwnLogs"]["Resource"])
    assert logs == ["arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/streamdesk-local-rollups:*"]


def test_alarms_on_failure_rate_and_p99_read_the_consumers_metrics(template: Template) -> None:
    service = [{"Name": "service", "Value": template.ref("AWS::StackName")}]
    p99 = _alarm(template, metrics.NAMESPACE, metrics.LATENCY_METRICS[schema.Stage.END_TO_END])
    assert p99["ExtendedStatistic"] == "p99"
    assert p99["Dimensions"] == service
    assert p99["Threshold"] == template.parameter("AlarmP99LatencyMs")
    rate = template.properties("FailureRateAlarm")
    stats = {m["Id"]: m["MetricStat"]["Metric"] for m in rate["Metrics"] if "MetricStat" in m}
    assert {m["MetricName"] for m in stats.values()} == {
        metrics.metric_name(schema.Transition.FAILED),
        metrics.metric_name(schema.Transition.SUCCEEDED),
    }
    assert all(m["Namespace"] == metrics.NAMESPACE and m["Dimensions"] == service for m in stats.values())
    (expression,) = [m for m in rate["Metrics"] if "Expression" in m]
    assert expression["ReturnData"] is True and "failed / (failed + succeeded)" in expression["Expression"]
    assert rate["Threshold"] == template.parameter("AlarmFailureRatePercent")


def test_the_idempotency_key_is_checked_with_one_pattern_in_request_and_response(template: Template) -> None:
    put = _integration(template, "/requests", "put")
    request = put["requestTemplates"]["application/json"]
    refused = put["responses"]["4\\d{2}"]["responseTemplates"]["application/json"]
    accepted = put["responses"]["default"]["responseTemplates"]["application/json"]
    pattern = re.compile(r"\$idempotencyKey\.matches\('([^']*)'\)")
    assert pattern.findall(request) == pattern.findall(refused) == ["[A-Za-z0-9._:~+=-]{1,128}"]
    # The same id is built where it is written and where it is answered, scoped to the caller's key.
    scoped = "$context.identity.apiKeyId:$idempotencyKey"
    assert f'#set($id = "{scoped}")' in request
    assert f'"id": "{scoped}"' in accepted
    # A retry must not change the item, so it writes no stream record: every attribute only if absent.
    update = _member(r'"UpdateExpression": "SET ([^"]*)"', request)
    assert update.count("if_not_exists(") == update.count(" = ")
    assert "attribute_not_exists(id) OR #request = :request" in request


def test_every_trust_policy_is_limited_to_this_account(template: Template) -> None:
    roles = {
        logical_id: resource
        for logical_id, resource in template.raw["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    assert set(roles) == {
        "ApiCancelRole",
        "ApiDynamoDbRole",
        "ApiGatewayCloudWatchRole",
        "ProcessorRole",
        "RollupsRole",
        "SlowWorkRole",
    }
    for logical_id in roles:
        document = template.resolve(roles[logical_id]["Properties"]["AssumeRolePolicyDocument"])
        for statement in document["Statement"]:
            assert statement["Principal"]["Service"].endswith(".amazonaws.com"), logical_id
            source = statement["Condition"]["StringEquals"]["aws:SourceAccount"]
            assert source == template.local.account_id, logical_id


def test_the_account_wide_logging_role_is_left_alone_unless_asked(template: Template) -> None:
    parameter = template.raw["Parameters"]["ConfigureApiGatewayLoggingRole"]
    assert parameter["Default"] == "false"
    assert template.raw["Conditions"]["CreateApiGatewayAccount"] is not None
    for logical_id in ("ApiGatewayAccount", "ApiGatewayCloudWatchRole"):
        assert template.raw["Resources"][logical_id]["Condition"] == "CreateApiGatewayAccount"


def test_the_access_log_writes_only_values_the_gateway_makes(template: Template) -> None:
    access_log = template.resource("RequestsApi")["Properties"]["AccessLogSetting"]["Format"]
    entry = json.loads(access_log)  # the format is one JSON object
    assert entry["extendedRequestId"] == "$context.extendedRequestId"
    # $context.requestId comes from a client's x-amzn-RequestId header.
    assert "$context.requestId" not in access_log


def test_simulate_is_off_on_aws_unless_the_parameter_turns_it_on(template: Template) -> None:
    parameter = template.raw["Parameters"]["AllowSimulate"]
    assert parameter["Default"] == "false" and parameter["AllowedValues"] == ["true", "false"]
    variables = template.resource("ProcessorFunction")["Properties"]["Environment"]["Variables"]
    assert variables["ALLOW_SIMULATE"].name == "Ref" and variables["ALLOW_SIMULATE"].value == "AllowSimulate"


# ------------------------------------------------------------------------------------------ slow lane
def _actions_by_resource(template: Template, role: str) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for logical_id, statement in _statements(template):
        if logical_id == role:
            for resource in _as_list(statement["Resource"]):
                granted.setdefault(resource, set()).update(_as_list(statement["Action"]))
    return granted


def test_the_processor_may_only_send_to_the_slow_work_queue(template: Template) -> None:
    granted = _actions_by_resource(template, "ProcessorRole")
    assert granted[template.get_att("SlowWorkQueue", "Arn")] == {"sqs:SendMessage"}
    assert template.get_att("SlowWorkDeadLetterQueue", "Arn") not in granted


def test_the_slow_work_function_only_receives_deletes_and_backs_off_on_its_queue(template: Template) -> None:
    function = template.properties("SlowWorkFunction")
    assert function["Role"] == template.get_att("SlowWorkRole", "Arn")
    assert "Policies" not in function and "ManagedPolicyArns" not in template.properties("SlowWorkRole")
    granted = _actions_by_resource(template, "SlowWorkRole")
    # GetQueueAttributes: Lambda's SQS event source needs it, with receive and delete; ChangeMessageVisibility
    # is the worker's own backoff after a transient failure (and nothing else).
    assert granted[template.get_att("SlowWorkQueue", "Arn")] == {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
    }  # fmt: skip
    assert granted[template.get_att(TABLE_ID, "Arn")] == {"dynamodb:UpdateItem"}
    assert not any(action.startswith("sqs:SendMessage") for actions in granted.values() for action in actions)
    assert not any(resource.endswith("/stream/*") for resource in granted)  # not a third stream reader


def test_the_slow_work_queue_hides_a_message_6x_the_function_timeout_then_dead_letters_it(
    template: Template,
) -> None:
    queue = template.properties("SlowWorkQueue")
    timeout = int(template.properties("SlowWorkFunction")["Timeout"])
    assert int(queue["VisibilityTimeout"]) >= 6 * timeout  # AWS's advice for a Lambda event source
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == template.get_att("SlowWorkDeadLetterQueue", "Arn")
    receives = queue["RedrivePolicy"]["maxReceiveCount"]
    # The worker ends a request FAILED at the queue's last delivery: it must know the same count.
    for function_id in ("SlowWorkFunction", FUNCTION_ID):
        variables = template.properties(function_id)["Environment"]["Variables"]
        assert variables["SLOW_WORK_MAX_RECEIVES"] == receives
        assert variables["SLOW_WORK_QUEUE_URL"] == template.ref("SlowWorkQueue")
    event = template.properties("SlowWorkFunction")["Events"]["SlowWork"]
    assert event["Type"] == "SQS"
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert int(event["Properties"]["BatchSize"]) <= 10


def test_the_slow_lane_adds_no_stream_reader(template: Template) -> None:
    readers = [
        (logical_id, name)
        for logical_id, resource in template.raw["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for name, event in (resource["Properties"].get("Events") or {}).items()
        if event["Type"] == "DynamoDB"
    ]
    assert len(readers) == 2  # the processor and the rollups consumer: DynamoDB Streams serves about two


def test_the_dead_letter_queue_has_an_alarm(template: Template) -> None:
    alarm = template.properties("SlowWorkDeadLetterAlarm")
    assert alarm["Dimensions"][0]["Value"] == template.get_att("SlowWorkDeadLetterQueue", "QueueName")
