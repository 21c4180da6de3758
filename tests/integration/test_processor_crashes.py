"""Crashes (a bug in a step, DynamoDB unreachable) fail only their record, and never leave an item that
the trigger's redelivery cannot take over."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import EndpointConnectionError
from streamdesk_processor import item
from streamdesk_processor.item import Status
from streamdesk_processor.steps import STEPS, Step, StepContext

from backend.local.dynamodb_local import client, free_port
from tests.processor_events import (
    get_image,
    insert_record,
    lambda_context,
    make_processor,
    put_pending_item,
    read_item,
    sequence_numbers,
    sequence_of,
    step_attempts,
    stream_event,
)

NAMES = [step.name for step in STEPS]


def test_unexpected_exception_in_a_step_fails_only_its_record(ddb: Any, table_name: str) -> None:
    broken = {"on": True}

    def fragile(ctx: StepContext) -> dict[str, Any]:
        if broken["on"] and ctx.request.get("boom"):
            raise KeyError("a bug in the business logic")
        return {"fragile": "ok"}

    steps = (STEPS[0], Step("fragile", fragile), *STEPS[1:])
    processor = make_processor(ddb, table_name, steps=steps)
    first = put_pending_item(ddb, table_name, {"n": 1})
    crashing = put_pending_item(ddb, table_name, {"boom": True})
    last = put_pending_item(ddb, table_name, {"n": 2})
    records = [insert_record(ddb, table_name, rid) for rid in (first, crashing, last)]

    response = processor.handle(stream_event(*records), lambda_context())

    assert sequence_numbers(response) == [sequence_of(records[1])]
    assert read_item(ddb, table_name, first)[item.STATUS] == Status.SUCCEEDED
    assert read_item(ddb, table_name, last)[item.STATUS] == Status.SUCCEEDED
    waiting = read_item(ddb, table_name, crashing)
    assert waiting[item.STATUS] == Status.PENDING
    assert waiting[item.LAST_ERROR][item.ERROR_TYPE] == "KeyError"
    assert waiting[item.LAST_ERROR][item.ERROR_TRANSIENT] is False
    assert waiting[item.LAST_ERROR][item.ERROR_STEP] == "fragile"
    assert "a bug in the business logic" in waiting[item.LAST_ERROR][item.ERROR_TRACEBACK]

    broken["on"] = False  # the fix is deployed; the trigger re-sends the record
    assert processor.handle(stream_event(records[1]), lambda_context()) == {"batchItemFailures": []}
    done = read_item(ddb, table_name, crashing)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert step_attempts(done)[NAMES[0]] == 1  # not repeated
    assert step_attempts(done)["fragile"] == 2


def test_bug_ends_failed_with_its_traceback_when_retries_are_spent(ddb: Any, table_name: str) -> None:
    def buggy(ctx: StepContext) -> dict[str, Any]:
        return {"ratio": 1 / 0}

    processor = make_processor(ddb, table_name, max_retries=0, steps=(Step("buggy", buggy),))
    request_id = put_pending_item(ddb, table_name, {})
    response = processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    assert response == {"batchItemFailures": []}
    failed = read_item(ddb, table_name, request_id)
    assert failed[item.STATUS] == Status.FAILED
    assert failed[item.ERROR][item.ERROR_TYPE] == "ZeroDivisionError"
    assert "ZeroDivisionError" in failed[item.ERROR][item.ERROR_TRACEBACK]


class ConnectionCut:
    """Makes a real client's UpdateItem calls for one request fail as if DynamoDB became unreachable,
    once the request has recorded ``after_steps`` steps (fault injection at botocore's send hook)."""

    def __init__(self, ddb: Any, request_id: str, after_steps: int) -> None:
        self.request_id = request_id
        self.after_steps = after_steps
        self.step_writes = 0
        self.active = True
        ddb.meta.events.register("before-send.dynamodb.UpdateItem", self)

    def __call__(self, request: Any, **_: Any) -> None:
        body = json.loads(request.body)
        if not self.active or body["Key"][item.ID]["S"] != self.request_id:
            return
        if "#steps.#step" in body["UpdateExpression"] or "SUCCEEDED" in json.dumps(body):
            if self.step_writes >= self.after_steps:
                raise EndpointConnectionError(endpoint_url=request.url)
            self.step_writes += 1


def test_dynamodb_unreachable_mid_record_leaves_it_reclaimable_by_the_same_record(
    dynamodb_endpoint: str, table_name: str
) -> None:
    ddb = client(dynamodb_endpoint)
    other = put_pending_item(ddb, table_name, {"n": 1})
    victim = put_pending_item(ddb, table_name, {"n": 2})
    cut = ConnectionCut(ddb, victim, after_steps=1)
    processor = make_processor(ddb, table_name)
    records = [insert_record(ddb, table_name, victim), insert_record(ddb, table_name, other)]

    response = processor.handle(stream_event(*records), lambda_context())

    assert sequence_numbers(response) == [sequence_of(records[0])]
    assert read_item(ddb, table_name, other)[item.STATUS] == Status.SUCCEEDED
    stuck = read_item(ddb, table_name, victim)
    assert stuck[item.STATUS] == Status.PROCESSING
    assert stuck[item.CLAIM] == records[0]["eventID"]
    assert step_attempts(stuck) == {NAMES[0]: 1}

    # Another record for the same request (a duplicate delivery with a new event id) cannot take it...
    cut.active = False
    before = get_image(ddb, table_name, victim)
    intruder = insert_record(ddb, table_name, victim)
    intruder["dynamodb"]["NewImage"][item.STATUS] = {"S": Status.PENDING.value}
    assert processor.handle(stream_event(intruder), lambda_context()) == {"batchItemFailures": []}
    assert get_image(ddb, table_name, victim) == before

    # ...but the redelivery of the record that holds the claim does, and resumes.
    assert processor.handle(stream_event(records[0]), lambda_context()) == {"batchItemFailures": []}
    done = read_item(ddb, table_name, victim)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.ATTEMPTS] == 2
    assert step_attempts(done) == {NAMES[0]: 1, NAMES[1]: 2, NAMES[2]: 2, NAMES[3]: 2}
    assert item.CLAIM not in done


def test_dynamodb_unreachable_mid_finish_is_completed_by_the_redelivery(
    dynamodb_endpoint: str, table_name: str
) -> None:
    ddb = client(dynamodb_endpoint)
    request_id = put_pending_item(ddb, table_name, {"n": 1})
    # Every step but the last recorded; the last step's record and the outcome are one write, and it is cut.
    cut = ConnectionCut(ddb, request_id, after_steps=len(STEPS) - 1)
    processor = make_processor(ddb, table_name)
    record = insert_record(ddb, table_name, request_id)
    # Every record failed: all are reported (not raised), so the trigger retries them with backoff.
    assert sequence_numbers(processor.handle(stream_event(record), lambda_context())) == [sequence_of(record)]
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.PROCESSING

    cut.active = False
    assert processor.handle(stream_event(record), lambda_context()) == {"batchItemFailures": []}
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    attempts = step_attempts(done)
    # No step whose record was written ran twice; the last one's record was the cut write, so it ran again.
    assert all(attempts[name] == 1 for name in NAMES[:-1])
    assert attempts[NAMES[-1]] == 2


def test_dynamodb_down_fails_the_batch_and_leaves_the_items_pending(ddb: Any, table_name: str) -> None:
    request_id = put_pending_item(ddb, table_name, {"n": 1})
    record = insert_record(ddb, table_name, request_id)
    dead = client(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    processor = make_processor(dead, table_name)
    assert sequence_numbers(processor.handle(stream_event(record), lambda_context())) == [sequence_of(record)]
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.PENDING

    # Back up: the same record goes through.
    assert make_processor(ddb, table_name).handle(stream_event(record), lambda_context()) == {
        "batchItemFailures": []
    }
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.SUCCEEDED
