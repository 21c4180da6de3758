"""The processor records outcomes on the item as the contract says (DynamoDB Local, items put as the API
would write them, Lambda-shaped stream events)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from streamdesk_processor import item
from streamdesk_processor.item import Status
from streamdesk_processor.processor import REQUEST_STEP
from streamdesk_processor.steps import STEPS, Step, StepContext

from tests.processor_events import (
    FakeClock,
    insert_record,
    lambda_context,
    make_processor,
    put_pending_item,
    read_item,
    stream_event,
)

STEP_NAMES = [step.name for step in STEPS]
DAY = 86_400


def process(ddb: Any, table_name: str, request_id: str, **kwargs: Any) -> dict[str, Any]:
    processor = make_processor(ddb, table_name, **kwargs)
    response = processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    assert response == {"batchItemFailures": []}
    return read_item(ddb, table_name, request_id)


def test_success_records_result_ttl_and_every_step(ddb: Any, table_name: str) -> None:
    clock = FakeClock(1_800_000_000.25)
    request_id = put_pending_item(ddb, table_name, {"amount": 12})
    shard = read_item(ddb, table_name, request_id)[item.TIME_BUCKET].split(":")[1]

    done = process(ddb, table_name, request_id, clock=clock, retention_days=3)

    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.TTL] == 1_800_000_000 + 3 * DAY  # epoch seconds, not milliseconds
    assert done[item.FINISHED_AT] == done[item.STARTED_AT] == done[item.UPDATED_AT] == 1_800_000_000_250
    assert done[item.ATTEMPTS] == 1
    assert done[item.RESULT] == {
        "validated": "true",
        "reservation": f"res-{request_id[-12:]}",
        "charged": "12",
        "notified": "true",
    }
    assert set(done[item.STEPS]) == set(STEP_NAMES)
    assert all(entry["attempt"] == 1 for entry in done[item.STEPS].values())
    # In the SUCCEEDED partition of the state index, claim released, time bucket kept.
    assert done[item.STATE_BUCKET] == f"SUCCEEDED:{shard}"
    for gone in (item.CLAIM, item.ERROR, item.LAST_ERROR):
        assert gone not in done
    assert done[item.TIME_BUCKET].endswith(f":{shard}")


def test_failure_records_the_error_and_keeps_the_item(ddb: Any, table_name: str) -> None:
    request_id = put_pending_item(
        ddb, table_name, {"simulate": {"fail": "card declined", "failAtStep": 2, "failTimes": 1}}
    )
    shard = read_item(ddb, table_name, request_id)[item.TIME_BUCKET].split(":")[1]

    failed = process(ddb, table_name, request_id)

    assert failed[item.STATUS] == Status.FAILED
    error = failed[item.ERROR]
    assert error[item.ERROR_TYPE] == "BusinessError"
    assert error[item.ERROR_MESSAGE] == "card declined"
    assert error[item.ERROR_STEP] == STEP_NAMES[1]
    assert error[item.ERROR_TRANSIENT] is False
    assert "card declined" in error[item.ERROR_TRACEBACK]
    assert failed[item.STATE_BUCKET] == f"FAILED:{shard}"
    assert item.FINISHED_AT in failed
    assert item.CLAIM not in failed
    assert set(failed[item.STEPS]) == {STEP_NAMES[0]}  # step 1 completed, step 2 did not


def test_success_sets_ttl_and_no_error_failure_sets_error_and_no_ttl(ddb: Any, table_name: str) -> None:
    """The article this product comes from had the two branches swapped; pin them."""
    ok = process(ddb, table_name, put_pending_item(ddb, table_name, {"n": 1}))
    ko = process(ddb, table_name, put_pending_item(ddb, table_name, {"simulate": {"fail": "no"}}))
    assert ok[item.STATUS] == Status.SUCCEEDED
    assert item.TTL in ok
    assert item.ERROR not in ok
    assert ko[item.STATUS] == Status.FAILED
    assert item.ERROR in ko
    assert item.TTL not in ko
    assert item.RESULT not in ko


def test_business_rule_failure_from_a_demo_step(ddb: Any, table_name: str) -> None:
    failed = process(ddb, table_name, put_pending_item(ddb, table_name, {"amount": -5}))
    assert failed[item.STATUS] == Status.FAILED
    assert failed[item.ERROR][item.ERROR_STEP] == "validate"
    assert "positive" in failed[item.ERROR][item.ERROR_MESSAGE]


@pytest.mark.parametrize(
    "body",
    ["this is not json", "[1, 2, 3]", '"a string"', '{"simulate": "always"}', "[" * 50_000 + "]" * 50_000],
)
def test_invalid_body_ends_failed_with_a_clear_error(ddb: Any, table_name: str, body: str) -> None:
    failed = process(ddb, table_name, put_pending_item(ddb, table_name, body))
    assert failed[item.STATUS] == Status.FAILED
    assert failed[item.ERROR][item.ERROR_TYPE] == "InvalidRequest"
    assert failed[item.ERROR][item.ERROR_STEP] == REQUEST_STEP
    assert failed[item.ATTEMPTS] == 1
    assert failed[item.STEPS] == {}


def test_error_message_and_traceback_are_bounded(ddb: Any, table_name: str) -> None:
    message = "x" * 30_000 + "END-OF-MESSAGE"
    failed = process(ddb, table_name, put_pending_item(ddb, table_name, {"simulate": {"fail": message}}))
    error = failed[item.ERROR]
    assert len(error[item.ERROR_MESSAGE]) == item.MAX_ERROR_MESSAGE_CHARS
    assert error[item.ERROR_MESSAGE].startswith("xxxx")
    assert len(error[item.ERROR_TRACEBACK]) == item.MAX_TRACEBACK_CHARS
    assert error[item.ERROR_TRACEBACK].rstrip().endswith("END-OF-MESSAGE")  # the end is kept


def test_result_is_bounded(ddb: Any, table_name: str) -> None:
    def chatty(ctx: StepContext) -> dict[str, Any]:
        return {f"{ctx.step}-{i}": "v" * 5_000 for i in range(30)}

    steps = (Step("first", chatty), Step("second", chatty))
    done = process(ddb, table_name, put_pending_item(ddb, table_name, {}), steps=steps)
    result = done[item.RESULT]
    assert done[item.STATUS] == Status.SUCCEEDED
    assert len(result) == item.MAX_RESULT_KEYS
    assert all(isinstance(v, str) and len(v) <= item.MAX_RESULT_VALUE_CHARS for v in result.values())


def test_delay_is_spent_on_the_attempt(ddb: Any, table_name: str) -> None:
    processor = make_processor(ddb, table_name)
    request_id = put_pending_item(ddb, table_name, {"simulate": {"delayMs": 150}})
    started = time.monotonic()
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    assert time.monotonic() - started >= 0.15
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.SUCCEEDED


def test_request_body_is_untouched(ddb: Any, table_name: str) -> None:
    body = {"amount": 3, "note": "it's fine"}
    request_id = put_pending_item(ddb, table_name, body)
    done = process(ddb, table_name, request_id)
    assert json.loads(done[item.REQUEST]) == body
