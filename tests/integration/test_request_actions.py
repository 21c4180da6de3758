"""Redrive and hand-back of stuck requests, against DynamoDB Local: conditional, recorded, operators only."""

from __future__ import annotations

import time
from typing import Any

import pytest
from streamdesk_processor import item as attr

from backend.local.dynamodb_local import client, free_port
from backend.roles import Actor, PermissionDenied, Role
from backend.store.actions import REDRIVE_BATCH_SIZE, Outcome, RequestActions
from backend.store.calls import StoreUnavailable
from tests.processor_events import put_pending_item, read_item

OPERATOR = Actor("ops@example.com", Role.OPERATOR)
VIEWER = Actor("viewer@example.com", Role.VIEWER)
ERROR = {
    "M": {
        attr.ERROR_TYPE: {"S": "BusinessError"},
        attr.ERROR_MESSAGE: {"S": "card declined"},
        attr.ERROR_STEP: {"S": "charge"},
        attr.ERROR_TRACEBACK: {"S": "Traceback ..."},
        attr.ERROR_TRANSIENT: {"BOOL": False},
    }
}


def make_failed(ddb: Any, table: str, created: int | None = None) -> str:
    request_id = put_pending_item(ddb, table, {"order": 1}, created_at_ms=created)
    shard = read_item(ddb, table, request_id)[attr.TIME_BUCKET].split(":")[1]
    ddb.update_item(
        TableName=table,
        Key={attr.ID: {"S": request_id}},
        UpdateExpression="SET #s = :f, #e = :e, #o = :o, #fin = :now, attempts = :one",
        ExpressionAttributeNames={
            "#s": attr.STATUS, "#e": attr.ERROR, "#o": attr.STATE_BUCKET, "#fin": attr.FINISHED_AT,
        },
        ExpressionAttributeValues={
            ":f": {"S": "FAILED"}, ":e": ERROR, ":o": {"S": f"FAILED:{shard}"},
            ":now": {"N": str(int(time.time() * 1000))}, ":one": {"N": "1"},
        },
    )  # fmt: skip
    return request_id


def test_redrive_moves_failed_back_to_pending_and_records_who(ddb: Any, table_name: str) -> None:
    request_id = make_failed(ddb, table_name)
    result = RequestActions(ddb, table_name).redrive(request_id, OPERATOR)
    assert result.outcome is Outcome.REDRIVEN
    stored = read_item(ddb, table_name, request_id)
    shard = stored[attr.TIME_BUCKET].split(":")[1]
    assert stored[attr.STATUS] == "PENDING"
    assert stored[attr.STATE_BUCKET] == f"PENDING:{shard}"
    assert stored[attr.REDRIVEN_BY] == OPERATOR.name
    assert stored[attr.REDRIVES] == 1
    assert abs(int(stored[attr.REDRIVEN_AT]) - time.time() * 1000) < 60_000
    assert attr.ERROR not in stored and attr.FINISHED_AT not in stored
    assert stored[attr.LAST_ERROR][attr.ERROR_MESSAGE] == "card declined"  # kept for people to see


def test_redrive_of_a_request_that_is_not_failed_changes_nothing(ddb: Any, table_name: str) -> None:
    request_id = put_pending_item(ddb, table_name, {"order": 2})
    before = read_item(ddb, table_name, request_id)
    result = RequestActions(ddb, table_name).redrive(request_id, OPERATOR)
    assert result.outcome is Outcome.NOT_FAILED
    assert "PENDING" in result.detail
    assert read_item(ddb, table_name, request_id) == before
    assert RequestActions(ddb, table_name).redrive("no-such-id", OPERATOR).outcome is Outcome.NOT_FOUND


def test_a_viewer_is_refused_by_the_backend(ddb: Any, table_name: str) -> None:
    request_id = make_failed(ddb, table_name)
    actions = RequestActions(ddb, table_name)
    with pytest.raises(PermissionDenied, match="viewer"):
        actions.redrive(request_id, VIEWER)
    with pytest.raises(PermissionDenied):
        actions.redrive_many([request_id], VIEWER)
    with pytest.raises(PermissionDenied):
        actions.hand_back_stuck(request_id, attr.Status.PENDING, 0, "test", VIEWER)
    assert read_item(ddb, table_name, request_id)[attr.STATUS] == "FAILED"


def test_bulk_redrive_runs_in_bounded_batches_with_one_result_each(ddb: Any, table_name: str) -> None:
    failed = [make_failed(ddb, table_name) for _ in range(REDRIVE_BATCH_SIZE + 3)]
    pending = put_pending_item(ddb, table_name, {"order": 3})
    batches: list[int] = []
    ids = [*failed, pending, "missing", failed[0]]
    results = RequestActions(ddb, table_name).redrive_many(
        ids, OPERATOR, on_batch=lambda b: batches.append(len(b))
    )
    assert [r.request_id for r in results] == [*failed, pending, "missing"]  # duplicates once, order kept
    assert [r.outcome for r in results] == [Outcome.REDRIVEN] * len(failed) + [
        Outcome.NOT_FAILED,
        Outcome.NOT_FOUND,
    ]
    assert batches == [REDRIVE_BATCH_SIZE, len(ids) - 1 - REDRIVE_BATCH_SIZE]
    assert all(read_item(ddb, table_name, i)[attr.STATUS] == "PENDING" for i in failed)


def test_hand_back_of_a_stuck_request(ddb: Any, table_name: str) -> None:
    now = int(time.time() * 1000)
    stuck = put_pending_item(ddb, table_name, {"order": 4}, created_at_ms=now - 3_600_000)
    moved_on = put_pending_item(ddb, table_name, {"order": 5}, created_at_ms=now - 3_600_000)
    actions = RequestActions(ddb, table_name)
    seen = int(read_item(ddb, table_name, stuck)[attr.UPDATED_AT])
    result = actions.hand_back_stuck(stuck, attr.Status.PENDING, seen, "no record", OPERATOR)
    assert result.outcome is Outcome.REDRIVEN
    stored = read_item(ddb, table_name, stuck)
    assert stored[attr.STATUS] == "PENDING" and stored[attr.REDRIVES] == 1
    assert stored[attr.LAST_ERROR][attr.ERROR_TYPE] == "Stuck"
    # A request that changed after it was judged stuck (its updatedAt is not the one seen) is left alone.
    seen_before = int(read_item(ddb, table_name, moved_on)[attr.UPDATED_AT])
    ddb.update_item(
        TableName=table_name,
        Key={attr.ID: {"S": moved_on}},
        UpdateExpression="SET #u = :now",
        ExpressionAttributeNames={"#u": attr.UPDATED_AT},
        ExpressionAttributeValues={":now": {"N": str(now)}},
    )
    outcome = actions.hand_back_stuck(moved_on, attr.Status.PENDING, seen_before, "x", OPERATOR).outcome
    assert outcome is Outcome.NOT_STUCK
    assert read_item(ddb, table_name, moved_on)[attr.STATUS] == "PENDING"
    assert attr.REDRIVES not in read_item(ddb, table_name, moved_on)


def test_unreachable_dynamodb_is_a_plain_error() -> None:
    dead = client(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        RequestActions(dead, "streamdesk-requests").redrive("x", OPERATOR)


def test_bulk_redrive_against_a_missing_table_stops_once_with_one_message(ddb: Any) -> None:
    """Reads and writes share one error model: a missing table is an outage, not one error per request."""
    actions = RequestActions(ddb, "no-such-table")
    batches: list[int] = []
    ids = [f"r-{n}" for n in range(REDRIVE_BATCH_SIZE * 3)]
    with pytest.raises(StoreUnavailable, match="table no-such-table does not exist"):
        actions.redrive_many(ids, OPERATOR, on_batch=lambda done: batches.append(len(done)))
    assert batches == []  # it stopped in the first batch: no batch was reported as handled
