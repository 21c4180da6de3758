"""The rule per transition (docs/rollups.md), from a stream record's old and new image; bad records."""

from __future__ import annotations

from typing import Any

import pytest
from streamdesk_processor import item
from streamdesk_rollups import error_groups
from streamdesk_rollups.schema import Stage, Transition, padded_sequence
from streamdesk_rollups.transitions import BadRecord, change_of

from backend.computed import failures
from tests.processor_events import TTL_PRINCIPAL, stream_record

T0 = 1_790_000_000_000


def image(status: str, **numbers: int) -> dict[str, Any]:
    names = {
        "created": item.CREATED_AT,
        "started": item.STARTED_AT,
        "finished": item.FINISHED_AT,
        "updated": item.UPDATED_AT,
        "attempts": item.ATTEMPTS,
        "redriven": item.REDRIVEN_AT,
        "ttl": item.TTL,
    }
    result: dict[str, Any] = {item.ID: {"S": "r1"}, item.STATUS: {"S": status}}
    for key, value in numbers.items():
        result[names[key]] = {"N": str(value)}
    return result


def modify(old: dict[str, Any], new: dict[str, Any], sequence: str = "100") -> dict[str, Any]:
    return stream_record(
        "MODIFY", keys={item.ID: {"S": "r1"}}, old_image=old, new_image=new, sequence_number=sequence
    )


def kinds(record: dict[str, Any]) -> dict[Transition, int]:
    return dict(change_of(record).transitions)


def test_accepted_is_an_insert_of_a_pending_request_at_its_creation() -> None:
    record = stream_record(
        "INSERT", keys={item.ID: {"S": "r1"}}, new_image=image("PENDING", created=T0, attempts=0)
    )
    assert kinds(record) == {Transition.ACCEPTED: T0}


def test_started_is_every_claim_that_raised_the_attempts() -> None:
    pending = image("PENDING", created=T0, attempts=0)
    claimed = image("PROCESSING", created=T0, started=T0 + 5, attempts=1)
    assert kinds(modify(pending, claimed)) == {Transition.STARTED: T0 + 5}
    # A redelivered record re-claiming the request it already holds starts a new attempt too.
    again = image("PROCESSING", created=T0, started=T0 + 9, attempts=2)
    assert kinds(modify(claimed, again)) == {Transition.STARTED: T0 + 9}
    # A step recorded under the same claim is no transition.
    assert change_of(modify(claimed, claimed)).empty


def test_finishing_counts_the_outcome_with_latencies_and_the_error_group() -> None:
    running = image("PROCESSING", created=T0, started=T0 + 40, attempts=1)
    done = image("SUCCEEDED", created=T0, started=T0 + 40, finished=T0 + 100, attempts=1)
    change = change_of(modify(running, done))
    assert dict(change.transitions) == {Transition.SUCCEEDED: T0 + 100}
    assert dict(change.latencies) == {Stage.QUEUE_WAIT: 40, Stage.PROCESSING: 60, Stage.END_TO_END: 100}
    assert change.error_group is None and change.open_failures == 0

    failed = image("FAILED", created=T0, started=T0 + 40, finished=T0 + 70, attempts=1)
    failed[item.ERROR] = {
        "M": {item.ERROR_TYPE: {"S": "BusinessError"}, item.ERROR_MESSAGE: {"S": "order 42"}}
    }
    change = change_of(modify(running, failed))
    assert dict(change.transitions) == {Transition.FAILED: T0 + 70}
    assert change.error_group is not None
    assert change.error_group.key == failures.group_key("BusinessError", "order 42")
    assert change.error_group.pattern == "order <n>"
    assert change.open_failures == 1


def test_latency_runs_from_the_redrive_like_the_dashboards() -> None:
    redriven = image("PENDING", created=T0, redriven=T0 + 10_000, attempts=1)
    done = image("SUCCEEDED", created=T0, redriven=T0 + 10_000, started=T0 + 10_050, finished=T0 + 10_080)
    assert dict(change_of(modify(redriven, done)).latencies) == {
        Stage.QUEUE_WAIT: 50,
        Stage.PROCESSING: 30,
        Stage.END_TO_END: 80,
    }


def test_retried_redriven_and_the_gauge() -> None:
    running = image("PROCESSING", created=T0, started=T0 + 1, attempts=1)
    handed_back = image("PENDING", created=T0, started=T0 + 1, attempts=1, updated=T0 + 30)
    assert kinds(modify(running, handed_back)) == {Transition.RETRIED: T0 + 30}
    failed = image("FAILED", created=T0, finished=T0 + 50, attempts=1)
    redriven = image("PENDING", created=T0, attempts=1, redriven=T0 + 900, updated=T0 + 900)
    change = change_of(modify(failed, redriven))
    assert dict(change.transitions) == {Transition.REDRIVEN: T0 + 900}
    assert change.open_failures == -1
    # A person deleting a failed request takes it off the gauge; nothing else is counted.
    deleted = stream_record("REMOVE", keys={item.ID: {"S": "r1"}}, old_image=failed)
    assert change_of(deleted).open_failures == -1 and not change_of(deleted).transitions


def test_resolving_is_counted_at_the_resolution_and_leaves_the_gauge() -> None:
    failed = image("FAILED", created=T0, finished=T0 + 50, attempts=1)
    resolved = image("RESOLVED", created=T0, finished=T0 + 50, attempts=1, updated=T0 + 600)
    resolved[item.RESOLUTION] = {
        "M": {item.RESOLUTION_REASON: {"S": "duplicate"}, item.RESOLUTION_AT: {"N": str(T0 + 590)}}
    }
    closing = change_of(modify(failed, resolved))
    assert closing.open_failures == -1
    assert dict(closing.transitions) == {Transition.RESOLVED: T0 + 590}
    assert closing.error_group is None and not closing.latencies
    # Without a resolution map (written by hand) the update's time is the resolution's.
    bare = image("RESOLVED", created=T0, finished=T0 + 50, attempts=1, updated=T0 + 600)
    assert kinds(modify(failed, bare)) == {Transition.RESOLVED: T0 + 600}


def test_reopening_is_counted_as_reopened_not_as_a_new_failure() -> None:
    failed = image("FAILED", created=T0, finished=T0 + 50, attempts=1, updated=T0 + 700)
    resolved = image("RESOLVED", created=T0, finished=T0 + 50, attempts=1, updated=T0 + 600)
    reopening = change_of(modify(resolved, failed, sequence="101"))
    assert reopening.open_failures == 1  # open again: the gauge stays exact
    assert dict(reopening.transitions) == {Transition.REOPENED: T0 + 700}
    assert reopening.error_group is None and not reopening.latencies


def test_cancelled_is_a_pending_request_withdrawn_at_its_finish() -> None:
    pending = image("PENDING", created=T0, attempts=0)
    cancelled = image("CANCELLED", created=T0, attempts=0, finished=T0 + 80, updated=T0 + 80)
    change = change_of(modify(pending, cancelled))
    assert dict(change.transitions) == {Transition.CANCELLED: T0 + 80}
    assert change.open_failures == 0 and not change.latencies and change.finished_at is None
    without_finish = image("CANCELLED", created=T0, attempts=0, updated=T0 + 90)
    assert kinds(modify(pending, without_finish)) == {Transition.CANCELLED: T0 + 90}


def test_expired_is_a_ttl_deletion_at_the_records_time() -> None:
    gone = image("SUCCEEDED", created=T0, finished=T0 + 5, ttl=T0 // 1000 + 60)
    record = stream_record("REMOVE", keys={item.ID: {"S": "r1"}}, old_image=gone, user_identity=TTL_PRINCIPAL)
    record["dynamodb"]["ApproximateCreationDateTime"] = T0 // 1000 + 120
    assert kinds(record) == {Transition.EXPIRED: T0 + 120_000}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(eventName="UNKNOWN_TO_SDK_VERSION"), "unknown eventName"),
        (lambda r: r.pop("dynamodb"), "no 'dynamodb'"),
        (lambda r: r["dynamodb"].pop("SequenceNumber"), "sequence number"),
        (lambda r: r["dynamodb"].update(SequenceNumber="12a"), "sequence number"),
        (lambda r: r["dynamodb"].update(SequenceNumber="1" * 41), "sequence number"),
        (lambda r: r["dynamodb"].pop("OldImage"), "NEW_AND_OLD_IMAGES"),
        (lambda r: r["dynamodb"].update(Keys={}, NewImage={}, OldImage={}), "no 'id' key"),
        (lambda r: r["dynamodb"]["NewImage"].update(attempts={"N": "x"}), "not a number"),
    ],
)
def test_records_that_cannot_come_from_the_stream_are_refused(mutate: Any, message: str) -> None:
    record = modify(image("PENDING", attempts=0), image("PROCESSING", attempts=1, started=T0))
    mutate(record)
    with pytest.raises(BadRecord, match=message):
        change_of(record)


def test_a_transition_without_any_time_is_refused() -> None:
    record = modify(image("PENDING", attempts=0), image("PROCESSING", attempts=1))
    record["dynamodb"].pop("ApproximateCreationDateTime")
    with pytest.raises(BadRecord, match="no time for the started transition"):
        change_of(record)


def test_padded_sequence_numbers_sort_as_numbers() -> None:
    numbers = ["9", "10", "000000000000000000099", "100000000000000000000000000000000000000"]
    assert sorted(numbers, key=padded_sequence) == sorted(numbers, key=int)
    assert sorted(numbers) != sorted(numbers, key=int)  # unpadded text order is wrong


def test_the_failures_page_groups_by_the_same_rule() -> None:
    """One definition: the dashboard's grouping is the consumer's function, not a copy."""
    assert failures.group_key is error_groups.group_key
    assert failures.normalise_message is error_groups.normalise_message
