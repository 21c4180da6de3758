"""Which stream records the processor acts on (the trigger's filter, repeated in code)."""

from __future__ import annotations

import pytest
from streamdesk_processor import item
from streamdesk_processor.item import Status
from streamdesk_processor.stream import Ignored, Work, classify, shard_of

from tests.processor_events import modify_record, stream_record, ttl_remove_record


def image(
    status: Status, bucket: str | None = "20419:3", request_id: str = "r-1"
) -> dict[str, dict[str, str]]:
    result = {item.ID: {"S": request_id}, item.STATUS: {"S": status.value}}
    if bucket is not None:
        result[item.TIME_BUCKET] = {"S": bucket}
    return result


def test_insert_of_a_pending_request_is_work_claimed_with_the_event_id() -> None:
    record = stream_record(
        "INSERT", keys={item.ID: {"S": "r-1"}}, new_image=image(Status.PENDING), event_id="e-7"
    )
    assert classify(record) == Work(request_id="r-1", token="e-7", shard="3")


def test_ttl_deletion_is_ignored() -> None:
    decision = classify(ttl_remove_record(image(Status.SUCCEEDED)))
    assert isinstance(decision, Ignored)
    assert decision.reason == "TTL deletion"


def test_unknown_event_name_is_ignored_not_a_crash() -> None:
    # DynamoDB Local's TTL deletions arrive like this if the trigger does not translate them.
    record = stream_record(
        "UNKNOWN_TO_SDK_VERSION", keys={item.ID: {"S": "r-1"}}, old_image=image(Status.SUCCEEDED)
    )
    assert isinstance(classify(record), Ignored)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (Status.PENDING, Status.PROCESSING),  # the claim
        (Status.PROCESSING, Status.PROCESSING),  # a step recorded
        (Status.PROCESSING, Status.SUCCEEDED),
        (Status.PROCESSING, Status.FAILED),
        (Status.PROCESSING, Status.PENDING),  # a transient failure handed back: the original record retries
        (Status.PENDING, Status.PENDING),
    ],
)
def test_the_processors_own_modifications_are_ignored(old: Status, new: Status) -> None:
    assert isinstance(classify(modify_record(image(old), image(new))), Ignored)


def test_redrive_modification_is_work() -> None:
    record = modify_record(image(Status.FAILED), image(Status.PENDING), event_id="e-9")
    assert classify(record) == Work(request_id="r-1", token="e-9", shard="3")


def test_insert_that_is_not_pending_is_ignored() -> None:
    record = stream_record("INSERT", keys={item.ID: {"S": "r-1"}}, new_image=image(Status.SUCCEEDED))
    assert isinstance(classify(record), Ignored)


def test_record_without_event_id_is_an_error_not_silently_dropped() -> None:
    record = stream_record("INSERT", keys={item.ID: {"S": "r-1"}}, new_image=image(Status.PENDING))
    del record["eventID"]
    with pytest.raises(ValueError, match="eventID"):
        classify(record)


@pytest.mark.parametrize(
    ("bucket", "shard"), [("20419:3", "3"), ("20419:12", "12"), (None, "0"), ("20419", "0")]
)
def test_shard_is_the_suffix_of_the_time_bucket(bucket: str | None, shard: str) -> None:
    assert shard_of(image(Status.PENDING, bucket=bucket)) == shard
