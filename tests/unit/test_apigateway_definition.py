"""The API twin reads its routes, validators, integrations and gateway responses from the template."""

from __future__ import annotations

import json

import pytest

from backend.local.apigateway import (
    JSON,
    ApiDefinition,
    body_errors,
    path_pattern,
    validation_error_string,
)
from backend.local.vtl_objects import UTIL, VtlInput
from backend.template import LocalValues, Template


@pytest.fixture(scope="module")
def api() -> ApiDefinition:
    return ApiDefinition.from_template(Template.load(local=LocalValues(refs={"RequestsTable": "the-table"})))


def test_routes_come_from_the_openapi_paths(api: ApiDefinition) -> None:
    assert {(r.method, r.resource_path) for r in api.routes} == {
        ("PUT", "/requests"),
        ("GET", "/requests/{id}"),
        ("DELETE", "/requests/{id}"),
    }
    put = api.find_route("PUT", "/requests")
    get = api.find_route("GET", "/requests/abc123")
    assert put is not None and get is not None
    assert get[1] == {"id": "abc123"}
    assert api.find_route("DELETE", "/requests") is None
    assert api.find_route("GET", "/requests/a/b") is None
    assert api.find_route("GET", "/other") is None


def test_both_methods_require_the_api_key_and_have_validators(api: ApiDefinition) -> None:
    for route in api.routes:
        assert route.api_key_required
        assert route.validator is not None
    put = api.find_route("PUT", "/requests")
    assert put is not None
    assert put[0].validator is not None and put[0].validator.validate_body
    assert set(put[0].models) == {JSON}


def test_the_body_model_accepts_objects_only(api: ApiDefinition) -> None:
    found = api.find_route("PUT", "/requests")
    assert found is not None
    model = found[0].models[JSON]
    assert body_errors(model, '{"a": 1}') == []
    assert body_errors(model, "{}") == []
    for body, kind in (
        ("[1]", "array"),
        ('"s"', "string"),
        ("3", "integer"),
        ("1.5", "number"),
        ("null", "null"),
    ):
        errors = body_errors(model, body)
        assert errors == [
            f'instance type ({kind}) does not match any allowed primitive type (allowed: ["object"])'
        ], body
    assert body_errors(model, "not json")[0].startswith("Invalid JSON")
    assert body_errors(model, '{"a": NaN}')[0].startswith("Invalid JSON")
    assert body_errors(model, "")[0].startswith("Invalid JSON")


def test_validation_error_string_is_json_escaped() -> None:
    text = validation_error_string(['allowed: ["object"]'])
    assert json.loads(f'"{text}"') == '[allowed: ["object"]]'


def test_integrations_name_the_dynamodb_action(api: ApiDefinition) -> None:
    actions = {(r.method, r.resource_path): r.integration for r in api.routes}
    assert actions["PUT", "/requests"].service == "dynamodb"
    assert actions["PUT", "/requests"].action == "UpdateItem"
    assert actions["GET", "/requests/{id}"].action == "GetItem"
    assert actions["DELETE", "/requests/{id}"].action == "UpdateItem"
    for integration in actions.values():
        assert integration.passthrough_behavior == "never"
        assert integration.rejects("text/plain")
        assert not integration.rejects(JSON)


def test_integration_responses_are_selected_by_a_full_regex_match_on_the_status(api: ApiDefinition) -> None:
    found = api.find_route("PUT", "/requests")
    assert found is not None
    integration = found[0].integration
    selected = {status: integration.select_response(status) for status in (200, 400, 413, 500, 503)}
    assert {s: r.status_code for s, r in selected.items() if r is not None} == {
        200: 202,
        400: 400,
        413: 400,
        500: 503,
        503: 503,
    }
    # A full match: "4\d{2}" does not select 4000, which falls to the default.
    fallback = integration.select_response(4000)
    assert fallback is not None and fallback.selection_pattern is None


def test_request_template_renders_the_item(api: ApiDefinition) -> None:
    found = api.find_route("PUT", "/requests")
    assert found is not None
    template = found[0].integration.request_template_for(JSON)
    assert template is not None
    epoch = 1_795_762_320_123
    body = '{"x": "it\'s \\"quoted\\" 😀"}'
    rendered = template.render(
        {
            "context": {"requestTimeEpoch": epoch, "extendedRequestId": "ext-1", "requestId": "req-1"},
            "input": VtlInput(body),
            "util": UTIL,
        }
    )
    request = json.loads(rendered)
    assert request["TableName"] == "the-table"
    assert request["ConditionExpression"] == "attribute_not_exists(id)"
    assert request["Key"] == {"id": {"S": "ext-1"}}
    item = request["ExpressionAttributeValues"]
    assert item[":request"] == {"S": body}
    assert item[":timeBucket"] == {"S": f"{epoch // 86_400_000}:{epoch % 4}"}
    assert item[":stateBucket"] == {"S": f"PENDING:{epoch % 4}"}
    # Every attribute is written, each only if absent (a no-op on an idempotent retry).
    assert request["UpdateExpression"] == "SET " + ", ".join(
        f"{name} = if_not_exists({name}, {value})"
        for name, value in (
            ("#request", ":request"),
            ("#status", ":pending"),
            ("stateBucket", ":stateBucket"),
            ("timeBucket", ":timeBucket"),
            ("createdAt", ":now"),
            ("updatedAt", ":now"),
            ("attempts", ":zero"),
        )
    )
    assert request["ExpressionAttributeNames"] == {"#request": "request", "#status": "status"}
    assert item[":pending"] == {"S": "PENDING"} and item[":now"] == {"N": str(epoch)}


def test_gateway_responses_come_from_the_template_with_aws_defaults_otherwise(api: ApiDefinition) -> None:
    forbidden = api.gateway_response("INVALID_API_KEY")
    assert forbidden.status_code == 403
    assert "API key" in forbidden.templates[JSON].source
    assert api.gateway_response("REQUEST_TOO_LARGE").status_code == 413
    assert api.gateway_response("UNSUPPORTED_MEDIA_TYPE").status_code == 415
    # Not customised in the template: AWS's status and {"message": $context.error.messageString}.
    timeout = api.gateway_response("INTEGRATION_TIMEOUT")
    assert timeout.status_code == 504
    body = timeout.templates[JSON].render(
        {"context": {"error": {"messageString": '"Endpoint request timed out"'}}}
    )
    assert json.loads(body) == {"message": "Endpoint request timed out"}


def test_stage_and_access_log_format(api: ApiDefinition) -> None:
    assert api.stage == "v1"
    assert api.access_log_format is not None
    assert "$context.extendedRequestId" in api.access_log_format.source


def test_path_patterns() -> None:
    assert path_pattern("/requests/{id}").fullmatch("/requests/x-1") is not None
    assert path_pattern("/requests/{id}").fullmatch("/requests/x/1") is None
    greedy = path_pattern("/files/{proxy+}").fullmatch("/files/a/b/c")
    assert greedy is not None and greedy.group("proxy") == "a/b/c"
