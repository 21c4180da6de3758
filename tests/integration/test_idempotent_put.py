"""PUT with ``Idempotency-Key``, through the API twin (the template's VTL) against DynamoDB Local.

The same key and body give the same request (no second item, no second stream record); a different body
is refused with 422; keys belong to one API key; an invalid key is 400 and stores nothing; without the
header every PUT is a new request, as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.local.api_context import api_key_id
from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api
from tests.processor_events import read_stream_records

KEY = "test-key-0123456789"
AUTH = {"x-api-key": KEY}


@pytest.fixture()
def api(settings: Settings, template: Template) -> Iterator[httpx.Client]:
    with running_api(settings, template) as base_url, httpx.Client(base_url=base_url, timeout=20) as client:
        yield client


def _items(ddb: Any, table: str) -> list[dict[str, Any]]:
    return list(ddb.scan(TableName=table, ConsistentRead=True)["Items"])


def _records_for(endpoint: str, table: str, request_id: str) -> list[str]:
    return [
        r["eventName"]
        for r in read_stream_records(endpoint, table)
        if r["dynamodb"]["Keys"]["id"]["S"] == request_id
    ]


def test_a_retry_with_the_same_key_and_body_returns_the_same_request(
    api: httpx.Client, ddb: Any, table_name: str, dynamodb_endpoint: str
) -> None:
    headers = {**AUTH, "Idempotency-Key": "order-42"}
    first = api.put("/requests", content='{"order": 42}', headers=headers)
    assert first.status_code == 202, first.text
    request_id = first.json()["id"]
    assert request_id == f"{api_key_id(KEY)}:order-42"
    assert first.json() == {"id": request_id, "status": "PENDING"}
    assert first.text.startswith("{"), repr(first.text)  # no blank line left by the template's directives
    # The header's name is case-insensitive (HTTP/2 clients send it lower case).
    again = api.put("/requests", content='{"order": 42}', headers={**AUTH, "idempotency-key": "order-42"})
    assert again.status_code == 202 and again.json() == first.json()
    assert len(_items(ddb, table_name)) == 1
    # The retry changed nothing, so the stream holds one record: nothing is processed or emitted twice.
    assert _records_for(dynamodb_endpoint, table_name, request_id) == ["INSERT"]
    assert api.get(f"/requests/{request_id}", headers=AUTH).json()["status"] == "PENDING"


def test_a_retry_after_processing_reports_the_current_status_and_changes_nothing(
    api: httpx.Client, ddb: Any, table_name: str, dynamodb_endpoint: str
) -> None:
    headers = {**AUTH, "Idempotency-Key": "k-done"}
    request_id = api.put("/requests", json={"n": 1}, headers=headers).json()["id"]
    ddb.update_item(
        TableName=table_name,
        Key={"id": {"S": request_id}},
        UpdateExpression="SET #s = :s, attempts = :one",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "SUCCEEDED"}, ":one": {"N": "1"}},
    )
    before = _items(ddb, table_name)
    retried = api.put("/requests", json={"n": 1}, headers=headers)
    assert retried.status_code == 202
    assert retried.json() == {"id": request_id, "status": "SUCCEEDED"}
    assert _items(ddb, table_name) == before
    assert _records_for(dynamodb_endpoint, table_name, request_id) == ["INSERT", "MODIFY"]


def test_the_same_key_with_another_body_is_422_and_changes_nothing(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    headers = {**AUTH, "Idempotency-Key": "k-1"}
    assert api.put("/requests", json={"amount": 10}, headers=headers).status_code == 202
    before = _items(ddb, table_name)
    refused = api.put("/requests", json={"amount": 1000}, headers=headers)
    assert refused.status_code == 422
    assert "different body" in refused.json()["message"]
    assert _items(ddb, table_name) == before


def test_keys_are_scoped_to_the_api_key(
    settings: Settings, template: Template, ddb: Any, table_name: str, tmp_path: Path
) -> None:
    other_key = "another-client-key-987654"
    other = settings.model_copy(update={"api_key_value": other_key, "data_dir": tmp_path / "other"})
    body = '{"same": true}'
    with running_api(settings, template) as one, running_api(other, template) as two:
        first = httpx.put(
            f"{one}/requests", content=body, headers={**AUTH, "Idempotency-Key": "shared"}, timeout=20
        )
        second = httpx.put(
            f"{two}/requests",
            content='{"same": false}',
            headers={"x-api-key": other_key, "Idempotency-Key": "shared"},
            timeout=20,
        )
    assert first.status_code == second.status_code == 202, (first.text, second.text)
    assert first.json()["id"] != second.json()["id"]
    assert len(_items(ddb, table_name)) == 2


@pytest.mark.parametrize(
    "key",
    ["has space", "a/b", 'quote"d', "$context.extendedRequestId", "#set($x = 1)", "x" * 129, "é".encode()],
)
def test_an_invalid_key_is_400_and_nothing_is_stored(
    api: httpx.Client, ddb: Any, table_name: str, key: str | bytes
) -> None:
    refused = api.put("/requests", json={"n": 1}, headers={**AUTH, "Idempotency-Key": key})
    assert refused.status_code == 400, refused.text
    assert "Idempotency-Key" in refused.json()["message"]
    assert _items(ddb, table_name) == []


def test_the_longest_valid_key_is_accepted(api: httpx.Client) -> None:
    key = "A-z_0.9:~+=" + "k" * 117
    accepted = api.put("/requests", json={}, headers={**AUTH, "Idempotency-Key": key})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["id"].endswith(":" + key)


def test_without_the_header_every_put_is_a_new_request(api: httpx.Client, ddb: Any, table_name: str) -> None:
    ids = {api.put("/requests", content='{"a": 1}', headers=AUTH).json()["id"] for _ in range(3)}
    assert len(ids) == 3
    assert len(_items(ddb, table_name)) == 3
    assert all(":" not in i for i in ids)


def test_a_body_with_quotes_and_unicode_is_matched_exactly_on_retry(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    body = json.dumps({"name": 'O\'Brien "the" 😀'}, ensure_ascii=False)
    headers = {**AUTH, "Idempotency-Key": "k-unicode", "content-type": "application/json"}
    first = api.put("/requests", content=body.encode(), headers=headers)
    second = api.put("/requests", content=body.encode(), headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert [i["request"]["S"] for i in _items(ddb, table_name)] == [body]
