"""The API twin (real uvicorn server) against DynamoDB Local with the template's table."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from streamdesk_processor import item as schema

from backend.local.dynamodb_local import free_port
from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api

KEY = "test-key-0123456789"
AUTH = {"x-api-key": KEY}


@pytest.fixture()
def api(settings: Settings, template: Template) -> Iterator[httpx.Client]:
    assert settings.api_key == KEY
    with running_api(settings, template) as base_url, httpx.Client(base_url=base_url, timeout=20) as client:
        yield client


def stored(ddb: Any, table: str, request_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = ddb.get_item(
        TableName=table, Key={"id": {"S": request_id}}, ConsistentRead=True
    ).get("Item")
    return item


def count(ddb: Any, table: str) -> int:
    return int(ddb.scan(TableName=table, Select="COUNT")["Count"])


BODIES = [
    '{"a": 1}',
    '{"quote": "say \\"hi\\"", "apostrophe": "it\'s", "backslash": "C:\\\\dir\\\\"}',
    '{"text": "line one\\nline two\\ttab"}',
    '{\n  "pretty": "printed",\r\n\t"tabs": true\n}\n',
    '{"dollar": "$context.requestId $!x ${y}", "hash": "#set($a = 1) ## #* *#"}',
    '{"unicode": "é ß 漢字 Ωmega", "emoji": "😀🎉"}',
    '{"nested": {"list": [1, 2.5, true, null, {"deep": ["x", {"y": "it\'s"}]}]}, "slash": "a/b\\\\/c"}',
    '  {"spaced" :  "out" }  \n',
]


def test_put_stores_the_body_byte_for_byte(
    api: httpx.Client, ddb: Any, table_name: str, settings: Settings
) -> None:
    for body in BODIES:
        before = int(time.time() * 1000)
        response = api.put("/requests", content=body.encode("utf-8"), headers=AUTH)
        after = int(time.time() * 1000)
        assert response.status_code == 202, (body, response.text)
        assert response.headers["content-type"] == "application/json"
        answer = response.json()
        assert set(answer) == {"id", "status"} and answer["status"] == "PENDING"
        item = stored(ddb, table_name, answer["id"])
        assert item is not None, body
        assert item[schema.REQUEST]["S"] == body
        assert item[schema.STATUS]["S"] == schema.Status.PENDING
        assert item[schema.ATTEMPTS]["N"] == "0"
        created = int(item[schema.CREATED_AT]["N"])
        assert before - 5 <= created <= after + 5
        assert item[schema.UPDATED_AT]["N"] == str(created)
        shard = created % settings.index_shards
        assert item[schema.TIME_BUCKET]["S"] == f"{created // schema.MS_PER_DAY}:{shard}"
        assert item[schema.STATE_BUCKET]["S"] == f"PENDING:{shard}"
    assert count(ddb, table_name) == len(BODIES)


def test_no_content_type_is_json_and_the_stage_prefix_works(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    bare = api.put("/requests", content=b'{"x": 1}', headers={**AUTH, "content-type": ""})
    assert bare.status_code == 202, bare.text
    staged = api.put("/v1/requests", json={"x": 2}, headers=AUTH)
    assert staged.status_code == 202
    with_charset = api.put(
        "/requests", content=b'{"x": 3}', headers={**AUTH, "content-type": "application/json; charset=utf-8"}
    )
    assert with_charset.status_code == 202
    assert count(ddb, table_name) == 3


def test_two_puts_get_different_ids(api: httpx.Client) -> None:
    ids = {api.put("/requests", json={"n": n}, headers=AUTH).json()["id"] for n in range(5)}
    assert len(ids) == 5


def test_a_client_request_id_header_does_not_choose_the_id(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    headers = {**AUTH, "x-amzn-RequestId": "chosen-by-client"}
    first = api.put("/requests", json={"n": 1}, headers=headers)
    second = api.put("/requests", json={"n": 2}, headers=headers)
    assert first.status_code == second.status_code == 202
    # As on AWS the header does become $context.requestId (echoed back) ...
    assert first.headers["x-amzn-RequestId"] == "chosen-by-client"
    # ... but the template keys the item on extendedRequestId, which no client can choose.
    assert first.json()["id"] != "chosen-by-client"
    assert first.json()["id"] != second.json()["id"]
    assert stored(ddb, table_name, "chosen-by-client") is None
    assert count(ddb, table_name) == 2


def test_get_returns_public_fields_of_a_pending_request(api: httpx.Client) -> None:
    request_id = api.put("/requests", json={"secret": "not shown"}, headers=AUTH).json()["id"]
    response = api.get(f"/requests/{request_id}", headers=AUTH)
    assert response.status_code == 200
    fields = response.json()
    assert fields["id"] == request_id
    assert fields["status"] == "PENDING"
    assert fields["attempts"] == 0
    assert fields["updatedAt"] == fields["createdAt"]
    assert schema.REQUEST not in fields
    assert set(fields) <= set(schema.PUBLIC_FIELDS)


def test_get_renders_a_failed_request_with_a_nasty_error_as_valid_json(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    request_id = api.put("/requests", json={"x": 1}, headers=AUTH).json()["id"]
    message = 'card "declined"\nit\'s C:\\path / 😀 $x #y\ttab'
    ddb.update_item(
        TableName=table_name,
        Key={"id": {"S": request_id}},
        UpdateExpression=(
            "SET #s = :s, attempts = :a, startedAt = :t, finishedAt = :f, updatedAt = :f, #e = :e"
        ),
        ExpressionAttributeNames={"#s": "status", "#e": "error"},
        ExpressionAttributeValues={
            ":s": {"S": "FAILED"},
            ":a": {"N": "2"},
            ":t": {"N": "1795762320000"},
            ":f": {"N": "1795762320500"},
            ":e": {
                "M": {
                    "type": {"S": "CardError"},
                    "message": {"S": message},
                    "step": {"S": "charge's step"},
                    "traceback": {"S": "Traceback ..."},
                    "transient": {"BOOL": False},
                }
            },
        },
    )
    response = api.get(f"/requests/{request_id}", headers=AUTH)
    assert response.status_code == 200
    fields = json.loads(response.text)  # valid JSON despite quotes, newlines and apostrophes
    assert fields["status"] == "FAILED"
    assert fields["attempts"] == 2
    assert fields["startedAt"] == 1795762320000
    assert fields["finishedAt"] == 1795762320500
    assert fields["error"] == {"type": "CardError", "message": message, "step": "charge's step"}
    assert "result" not in fields


def test_get_renders_a_succeeded_request_with_its_result(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    request_id = api.put("/requests", json={"x": 1}, headers=AUTH).json()["id"]
    result = {"total": "42", "note": 'said "ok"\nit\'s done', "ünïcode": "✓"}
    ddb.update_item(
        TableName=table_name,
        Key={"id": {"S": request_id}},
        UpdateExpression="SET #s = :s, attempts = :a, finishedAt = :f, #r = :r REMOVE stateBucket",
        ExpressionAttributeNames={"#s": "status", "#r": "result"},
        ExpressionAttributeValues={
            ":s": {"S": "SUCCEEDED"},
            ":a": {"N": "1"},
            ":f": {"N": "1795762320999"},
            ":r": {"M": {k: {"S": v} for k, v in result.items()}},
        },
    )
    response = api.get(f"/requests/{request_id}", headers=AUTH)
    assert response.status_code == 200
    fields = json.loads(response.text)
    assert fields["status"] == "SUCCEEDED"
    assert fields["result"] == result
    assert "error" not in fields


def test_get_unknown_id_is_404(api: httpx.Client) -> None:
    response = api.get("/requests/no-such-id", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"message": "No request with this id."}
    odd = api.get("/requests/it's%20%22odd%22", headers=AUTH)
    assert odd.status_code == 404


def test_missing_or_wrong_key_is_403(api: httpx.Client, ddb: Any, table_name: str) -> None:
    for headers in ({}, {"x-api-key": "wrong"}, {"x-api-key": KEY + "x"}):
        put = api.put("/requests", json={"a": 1}, headers=headers)
        assert put.status_code == 403
        assert "API key" in put.json()["message"]
        get = api.get("/requests/anything", headers=headers)
        assert get.status_code == 403
    assert count(ddb, table_name) == 0


def test_unknown_route_or_method_is_403_missing_authentication_token(api: httpx.Client) -> None:
    for method, path in (("GET", "/nothing"), ("DELETE", "/requests"), ("POST", "/requests"), ("GET", "/")):
        response = api.request(method, path, headers=AUTH)
        assert response.status_code == 403, (method, path)
        assert response.json() == {"message": "Forbidden: no such route, or no API key sent."}


def test_bodies_that_are_not_one_json_object_are_400(api: httpx.Client, ddb: Any, table_name: str) -> None:
    for body in ("not json", "[1, 2]", '"a string"', "42", "null", "", '{"a": 1', '{"a": NaN}'):
        response = api.put("/requests", content=body.encode(), headers=AUTH)
        assert response.status_code == 400, body
        answer = response.json()  # the validator's detail is embedded without breaking the JSON
        assert answer["message"] == "Invalid request body: send one JSON object."
        assert answer["detail"].startswith("[")
    assert count(ddb, table_name) == 0


def test_a_deeply_nested_or_non_utf8_body_is_400_and_nothing_is_stored(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    deep = '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}"
    for raw in (deep.encode(), b'{"name": "caf\xe9"}'):  # the second is Latin-1, not UTF-8
        response = api.put("/requests", content=raw, headers=AUTH)
        assert response.status_code == 400, response.text[:200]
        assert response.json()["message"] == "Invalid request body: send one JSON object."
    assert count(ddb, table_name) == 0


def test_unsupported_content_type_is_415(api: httpx.Client, ddb: Any, table_name: str) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = api.put("/requests", content=b'{"a": 1}', headers={**AUTH, "content-type": content_type})
        assert response.status_code == 415
        assert "content type" in response.json()["message"]
    assert count(ddb, table_name) == 0


def test_a_body_too_large_for_one_item_is_413_and_nothing_is_stored(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    body = json.dumps({"blob": "x" * 500_000})  # passes the gateway (10 MB), refused by DynamoDB (400 KB)
    response = api.put("/requests", content=body.encode(), headers=AUTH)
    assert response.status_code == 413
    assert "too large" in response.json()["message"]
    assert count(ddb, table_name) == 0


def test_a_body_over_10_mb_is_413_from_the_gateway(api: httpx.Client, ddb: Any, table_name: str) -> None:
    body = b'{"blob": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    response = api.put("/requests", content=body, headers=AUTH)
    assert response.status_code == 413
    assert "too large" in response.json()["message"]
    assert response.headers["x-amzn-ErrorType"] == "RequestTooLargeException"
    assert count(ddb, table_name) == 0


def test_dynamodb_unreachable_is_503_and_says_nothing_was_stored(
    settings: Settings, template: Template
) -> None:
    down = settings.model_copy(update={"dynamodb_port": free_port()})
    with running_api(down, template) as base_url:
        response = httpx.put(f"{base_url}/requests", json={"a": 1}, headers=AUTH, timeout=20)
        assert response.status_code == 503
        assert "nothing was stored" in response.json()["message"]
        read = httpx.get(f"{base_url}/requests/x", headers=AUTH, timeout=20)
        assert read.status_code == 503


def test_one_access_log_line_per_request(api: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamdesk.api.access")
    accepted = api.put("/requests", json={"a": 1}, headers=AUTH)
    api.put("/requests", json={"a": 1})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [r.getMessage() for r in caplog.records if r.name == "streamdesk.api.access"]
        if len(lines) >= 2:
            break
        time.sleep(0.02)
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["extendedRequestId"] == accepted.json()["id"]
    assert "requestId" not in first  # a client can set it (x-amzn-RequestId): never logged
    assert first["method"] == "PUT" and first["path"] == "/requests"
    assert first["status"] == "202" and first["integrationStatus"] == "200" and first["error"] == "-"
    assert int(first["length"]) == len(accepted.content)
    assert second["status"] == "403" and second["integrationStatus"] == "-"
    assert second["error"] == "Forbidden"


def test_a_client_request_id_cannot_break_or_forge_an_access_log_line(
    api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamdesk.api.access")
    forged = 'x","status":"200","ip":"10.0.0.1'
    accepted = api.put("/requests", json={"a": 1}, headers={**AUTH, "x-amzn-RequestId": forged})
    assert accepted.status_code == 202
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline and not lines:
        lines = [r.getMessage() for r in caplog.records if r.name == "streamdesk.api.access"]
        time.sleep(0.02)
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["extendedRequestId"] == accepted.json()["id"]
    assert entry["status"] == "202" and entry["ip"] == "127.0.0.1"
    assert "10.0.0.1" not in lines[0]
