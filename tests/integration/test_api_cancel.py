"""DELETE /requests/{id} through the API twin (the template's own VTL) against DynamoDB Local: a pending
request is cancelled (200, CANCELLED, a TTL, a trail entry); any other state is refused (409 with the status
it has, nothing changed); an unknown id is 404; the key is required; GET reports CANCELLED."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from streamdesk_processor import item as schema
from streamdesk_processor.item import Status

from backend.api_client import ApiClient
from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api

KEY = "test-key-0123456789"
AUTH = {"x-api-key": KEY}


@pytest.fixture()
def api(settings: Settings, template: Template) -> Iterator[httpx.Client]:
    with running_api(settings, template) as base_url, httpx.Client(base_url=base_url, timeout=20) as client:
        yield client


def stored(ddb: Any, table: str, request_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ddb.get_item(TableName=table, Key={"id": {"S": request_id}}, ConsistentRead=True)[
        "Item"
    ]
    return found


def submit(api: httpx.Client) -> str:
    answer = api.put("/requests", json={"order": 1}, headers=AUTH)
    assert answer.status_code == 202, answer.text
    request_id: str = answer.json()["id"]
    return request_id


def set_status(ddb: Any, table: str, request_id: str, status: Status) -> None:
    ddb.update_item(
        TableName=table,
        Key={"id": {"S": request_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": schema.STATUS},
        ExpressionAttributeValues={":s": {"S": status.value}},
    )


def test_cancel_a_pending_request_is_200_and_records_who_when_and_a_ttl(
    api: httpx.Client, ddb: Any, table_name: str, settings: Settings
) -> None:
    request_id = submit(api)
    before = int(time.time())
    answer = api.delete(f"/requests/{request_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": request_id, "status": Status.CANCELLED.value}

    item = stored(ddb, table_name, request_id)
    assert item[schema.STATUS]["S"] == Status.CANCELLED.value
    shard = item[schema.STATE_BUCKET]["S"].split(schema.BUCKET_SEPARATOR)[1]
    assert item[schema.STATE_BUCKET]["S"] == schema.state_bucket(Status.CANCELLED.value, shard)
    assert 0 <= int(shard) < settings.index_shards
    ttl = int(item[schema.TTL]["N"])
    days = settings.closed_days
    assert before + days * 86_400 - 5 <= ttl <= int(time.time()) + days * 86_400 + 5
    assert int(item[schema.FINISHED_AT]["N"]) >= int(item[schema.CREATED_AT]["N"])
    (entry,) = item[schema.TRAIL]["L"]
    assert entry["M"][schema.TRAIL_ACTION]["S"] == schema.TrailAction.CANCEL.value
    assert entry["M"][schema.TRAIL_BY]["S"] == schema.TRAIL_BY_API
    assert int(entry["M"][schema.TRAIL_AT]["N"]) == int(item[schema.UPDATED_AT]["N"])
    assert schema.ATTEMPTS in item and item[schema.ATTEMPTS]["N"] == "0"

    shown = api.get(f"/requests/{request_id}", headers=AUTH)
    assert shown.status_code == 200
    assert shown.json()["status"] == Status.CANCELLED.value


@pytest.mark.parametrize(
    "status", [Status.PROCESSING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.RESOLVED]
)
def test_cancel_refuses_every_other_state_with_409_and_its_status(
    api: httpx.Client, ddb: Any, table_name: str, status: Status
) -> None:
    request_id = submit(api)
    set_status(ddb, table_name, request_id, status)
    before = stored(ddb, table_name, request_id)
    answer = api.delete(f"/requests/{request_id}", headers=AUTH)
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["id"] == request_id
    assert body["status"] == status.value
    assert "only a PENDING request" in body["message"]
    assert stored(ddb, table_name, request_id) == before  # nothing changed


def test_cancel_an_unknown_id_is_404_and_creates_nothing(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    answer = api.delete("/requests/no-such-id", headers=AUTH)
    assert answer.status_code == 404, answer.text
    assert answer.json() == {"message": "No request with this id."}
    assert ddb.scan(TableName=table_name, Select="COUNT")["Count"] == 0


def test_cancel_twice_is_200_then_409_cancelled(api: httpx.Client) -> None:
    request_id = submit(api)
    assert api.delete(f"/requests/{request_id}", headers=AUTH).status_code == 200
    again = api.delete(f"/requests/{request_id}", headers=AUTH)
    assert again.status_code == 409
    assert again.json()["status"] == Status.CANCELLED.value


def test_cancel_needs_the_key(api: httpx.Client, ddb: Any, table_name: str) -> None:
    request_id = submit(api)
    for headers in ({}, {"x-api-key": "wrong"}):
        answer = api.delete(f"/requests/{request_id}", headers=headers)
        assert answer.status_code == 403, answer.text
    assert stored(ddb, table_name, request_id)[schema.STATUS]["S"] == Status.PENDING.value


def test_a_nasty_id_is_escaped_not_injected(api: httpx.Client, ddb: Any, table_name: str) -> None:
    nasty = 'x", "ConditionExpression": "attribute_not_exists(id)'
    answer = api.delete(f"/requests/{httpx.URL(path=nasty).path}", headers=AUTH)
    assert answer.status_code == 404, answer.text
    assert ddb.scan(TableName=table_name, Select="COUNT")["Count"] == 0


def test_the_api_client_cancels_and_reads_each_answer(
    api: httpx.Client, settings: Settings, ddb: Any, table_name: str
) -> None:
    request_id = submit(api)
    with ApiClient(str(api.base_url), KEY) as client:
        first = client.cancel(request_id)
        assert (first.cancelled, first.status_code, first.status) == (True, 200, Status.CANCELLED.value)
        again = client.cancel(request_id)
        assert (again.cancelled, again.status_code, again.status) == (False, 409, Status.CANCELLED.value)
        assert "only a PENDING request" in again.message
        unknown = client.cancel("no/such id")
        assert (unknown.status_code, unknown.status, unknown.message) == (
            404,
            None,
            "No request with this id.",
        )
        shown = client.get(request_id).request
        assert shown is not None and shown.status == Status.CANCELLED.value and shown.finished
