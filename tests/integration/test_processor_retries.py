"""Transient failures, retries, redelivery and redrive: the claim protocol against DynamoDB Local."""

from __future__ import annotations

from typing import Any

from streamdesk_processor import item
from streamdesk_processor.item import Status
from streamdesk_processor.steps import STEPS

from tests.processor_events import (
    FakeClock,
    get_image,
    insert_record,
    lambda_context,
    make_processor,
    put_pending_item,
    read_item,
    redrive,
    sequence_numbers,
    sequence_of,
    step_attempts,
    stream_event,
    ttl_remove_record,
)

NAMES = [step.name for step in STEPS]


def test_transient_once_then_success_on_redelivery_of_the_same_record(ddb: Any, table_name: str) -> None:
    processor = make_processor(ddb, table_name)
    flaky = put_pending_item(
        ddb,
        table_name,
        {"simulate": {"fail": "gateway timeout", "transient": True, "failTimes": 1, "failAtStep": 3}},
    )
    calm = put_pending_item(ddb, table_name, {"n": 1})
    flaky_record = insert_record(ddb, table_name, flaky)
    shard = read_item(ddb, table_name, flaky)[item.TIME_BUCKET].split(":")[1]

    first = processor.handle(
        stream_event(flaky_record, insert_record(ddb, table_name, calm)), lambda_context()
    )

    assert sequence_numbers(first) == [sequence_of(flaky_record)]
    waiting = read_item(ddb, table_name, flaky)
    assert waiting[item.STATUS] == Status.PENDING
    assert waiting[item.STATE_BUCKET] == f"PENDING:{shard}"
    assert waiting[item.ATTEMPTS] == 1
    assert waiting[item.LAST_ERROR][item.ERROR_MESSAGE] == "gateway timeout"
    assert waiting[item.LAST_ERROR][item.ERROR_TRANSIENT] is True
    assert waiting[item.LAST_ERROR][item.ERROR_STEP] == NAMES[2]
    assert item.CLAIM not in waiting
    assert item.ERROR not in waiting
    assert step_attempts(waiting) == {NAMES[0]: 1, NAMES[1]: 1}
    assert read_item(ddb, table_name, calm)[item.STATUS] == Status.SUCCEEDED

    # The trigger re-sends the failed record (same eventID and sequence number).
    second = processor.handle(stream_event(flaky_record), lambda_context())

    assert second == {"batchItemFailures": []}
    done = read_item(ddb, table_name, flaky)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.ATTEMPTS] == 2
    # Steps 1 and 2 were not repeated; 3 and 4 ran on the retry.
    assert step_attempts(done) == {NAMES[0]: 1, NAMES[1]: 1, NAMES[2]: 2, NAMES[3]: 2}
    assert item.LAST_ERROR not in done
    assert set(done[item.RESULT]) == {"validated", "reservation", "charged", "notified"}


def test_the_design_example_transient_fails_once_and_succeeds_on_the_retry(ddb: Any, table_name: str) -> None:
    processor = make_processor(ddb, table_name)
    request_id = put_pending_item(
        ddb, table_name, {"simulate": {"fail": "gateway timeout", "transient": True, "failTimes": 1}}
    )
    record = insert_record(ddb, table_name, request_id)
    # Every record failed: all are reported (not raised), so the trigger retries them with backoff.
    assert sequence_numbers(processor.handle(stream_event(record), lambda_context())) == [sequence_of(record)]
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.PENDING

    assert processor.handle(stream_event(record), lambda_context()) == {"batchItemFailures": []}
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.ATTEMPTS] == 2


def test_transient_failure_ends_failed_when_retries_are_spent(ddb: Any, table_name: str) -> None:
    processor = make_processor(ddb, table_name, max_retries=2)
    request_id = put_pending_item(ddb, table_name, {"simulate": {"fail": "still down", "transient": True}})
    record = insert_record(ddb, table_name, request_id)
    for _ in range(2):  # attempts 1 and 2: handed back for a retry
        response = processor.handle(stream_event(record), lambda_context())
        assert sequence_numbers(response) == [sequence_of(record)]
        assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.PENDING

    # Attempt 3 = MAX_RETRIES + 1: recorded as FAILED, and the record counts as done for the batch.
    assert processor.handle(stream_event(record), lambda_context()) == {"batchItemFailures": []}
    failed = read_item(ddb, table_name, request_id)
    assert failed[item.STATUS] == Status.FAILED
    assert failed[item.ATTEMPTS] == 3
    assert failed[item.ERROR][item.ERROR_TRANSIENT] is True
    assert failed[item.ERROR][item.ERROR_MESSAGE] == "still down"
    assert item.TTL not in failed


def test_redelivery_of_a_finished_request_changes_nothing(ddb: Any, table_name: str) -> None:
    processor = make_processor(ddb, table_name)
    ok = put_pending_item(ddb, table_name, {"n": 1})
    ko = put_pending_item(ddb, table_name, {"simulate": {"fail": "no"}})
    records = [insert_record(ddb, table_name, ok), insert_record(ddb, table_name, ko)]
    processor.handle(stream_event(*records), lambda_context())
    before = {rid: get_image(ddb, table_name, rid) for rid in (ok, ko)}
    assert before[ok][item.STATUS]["S"] == Status.SUCCEEDED
    assert before[ko][item.STATUS]["S"] == Status.FAILED

    # The same records again, and records with other event ids for the same items (at-least-once).
    again = processor.handle(stream_event(*records), lambda_context())
    others = processor.handle(
        stream_event(insert_record(ddb, table_name, ok), insert_record(ddb, table_name, ko)), lambda_context()
    )

    assert again == others == {"batchItemFailures": []}
    assert {rid: get_image(ddb, table_name, rid) for rid in (ok, ko)} == before


def test_redrive_resumes_after_the_last_completed_step(ddb: Any, table_name: str) -> None:
    processor = make_processor(ddb, table_name)
    request_id = put_pending_item(
        ddb,
        table_name,
        {"simulate": {"fail": "card declined", "failAtStep": 2, "failTimes": 1, "delayMs": 150}},
    )
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    failed = read_item(ddb, table_name, request_id)
    assert failed[item.STATUS] == Status.FAILED
    assert failed[item.ATTEMPTS] == 1
    assert failed[item.ERROR][item.ERROR_MESSAGE] == "card declined"
    assert failed[item.ERROR][item.ERROR_STEP] == NAMES[1]

    redrive_record = redrive(ddb, table_name, request_id)
    assert processor.handle(stream_event(redrive_record), lambda_context()) == {"batchItemFailures": []}

    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.ATTEMPTS] == 2
    assert step_attempts(done) == {NAMES[0]: 1, NAMES[1]: 2, NAMES[2]: 2, NAMES[3]: 2}
    assert item.ERROR not in done
    assert done[item.STATE_BUCKET].startswith("SUCCEEDED:")
    # The result includes the summary of the step completed before the redrive.
    assert done[item.RESULT]["validated"] == "true"
    assert done[item.REDRIVES] == 1


def test_mixed_batch_reports_exactly_the_records_to_retry(ddb: Any, table_name: str) -> None:
    processor = make_processor(ddb, table_name)
    ok = put_pending_item(ddb, table_name, {"n": 1})
    flaky_a = put_pending_item(ddb, table_name, {"simulate": {"fail": "timeout", "transient": True}})
    ko = put_pending_item(ddb, table_name, {"simulate": {"fail": "declined"}})
    flaky_b = put_pending_item(ddb, table_name, {"simulate": {"fail": "throttled", "transient": True}})
    records = [
        insert_record(ddb, table_name, ok),
        insert_record(ddb, table_name, flaky_a),
        ttl_remove_record(get_image(ddb, table_name, ok)),
        insert_record(ddb, table_name, ko),
        insert_record(ddb, table_name, flaky_b),
    ]

    response = processor.handle(stream_event(*records), lambda_context())

    assert sequence_numbers(response) == [sequence_of(records[1]), sequence_of(records[4])]
    statuses = [read_item(ddb, table_name, rid)[item.STATUS] for rid in (ok, flaky_a, ko, flaky_b)]
    assert statuses == [Status.SUCCEEDED, Status.PENDING, Status.FAILED, Status.PENDING]


def test_attempt_timestamps_follow_the_clock(ddb: Any, table_name: str) -> None:
    clock = FakeClock(1_900_000_000.0)
    processor = make_processor(ddb, table_name, clock=clock)
    request_id = put_pending_item(
        ddb, table_name, {"simulate": {"fail": "t", "transient": True, "failTimes": 1}}
    )
    record = insert_record(ddb, table_name, request_id)
    # Every record failed: all are reported (not raised), so the trigger retries them with backoff.
    assert sequence_numbers(processor.handle(stream_event(record), lambda_context())) == [sequence_of(record)]
    clock.advance(5)
    processor.handle(stream_event(record), lambda_context())
    done = read_item(ddb, table_name, request_id)
    assert done[item.STARTED_AT] == 1_900_000_005_000  # the latest attempt
    assert done[item.TTL] == 1_900_000_005 + 7 * 86_400
