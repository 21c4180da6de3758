"""The rollups consumer with hand-made records against DynamoDB Local: the open-failures gauge under
redelivery, sequence numbers of different lengths, bad records, and hot buckets spread over write shards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from streamdesk_processor import item
from streamdesk_rollups.schema import PK, Grain, Transition

from tests.processor_events import TTL_PRINCIPAL, stream_record
from tests.rollups_workload import create_rollups_table, make_consumer, reader

# Now, not a fixed date: a bucket older than the retention gets an expired TTL, and DynamoDB Local deletes
# expired items within seconds.
T0 = int(time.time() * 1000)
SINCE, UNTIL = T0 - 3_600_000, T0 + 3_600_000


@pytest.fixture()
def rollups_table(ddb: Any, table_name: str) -> Iterator[str]:
    name = create_rollups_table(ddb, f"{table_name}-rollups")
    yield name
    ddb.delete_table(TableName=name)


def image(request_id: str, status: str, at: int, attempts: int = 1) -> dict[str, Any]:
    return {
        item.ID: {"S": request_id},
        item.STATUS: {"S": status},
        item.CREATED_AT: {"N": str(T0)},
        item.STARTED_AT: {"N": str(at)},
        item.FINISHED_AT: {"N": str(at)},
        item.UPDATED_AT: {"N": str(at)},
        item.REDRIVEN_AT: {"N": str(at)},
        item.ATTEMPTS: {"N": str(attempts)},
    }


def change(request_id: str, old: str | None, new: str | None, sequence: str, at: int) -> dict[str, Any]:
    keys = {item.ID: {"S": request_id}}
    if old is None:
        return stream_record(
            "INSERT", keys=keys, new_image=image(request_id, new or "", at), sequence_number=sequence
        )
    if new is None:
        return stream_record(
            "REMOVE", keys=keys, old_image=image(request_id, old, at), sequence_number=sequence
        )
    return stream_record(
        "MODIFY",
        keys=keys,
        old_image=image(request_id, old, at),
        new_image=image(request_id, new, at),
        sequence_number=sequence,
    )


def life_with_failures(request_id: str, first_sequence: int) -> list[dict[str, Any]]:
    """Accepted, failed, redriven, failed again, deleted by a person; sequence numbers from ``first``."""
    steps = [
        (None, "PENDING"),
        ("PENDING", "FAILED"),
        ("FAILED", "PENDING"),
        ("PENDING", "FAILED"),
        ("FAILED", None),
    ]
    return [
        change(request_id, old, new, str(first_sequence + number), T0 + number * 1000)
        for number, (old, new) in enumerate(steps)
    ]


def test_the_open_failures_gauge_follows_failed_in_and_out_exactly_under_redelivery(
    ddb: Any, rollups_table: str
) -> None:
    consumer = make_consumer(ddb, rollups_table)
    gauge = reader(ddb, rollups_table)
    a, b = life_with_failures("a", 1000), life_with_failures("b", 2000)
    expected_after = [1, 0, 1, 0]  # after a[1], a[2], a[3], a[4]
    consumer.handle({"Records": a[:1]})
    for number, record in enumerate(a[1:]):
        consumer.handle({"Records": [record]})
        consumer.handle({"Records": a[: number + 2]})  # and everything up to it again
        assert gauge.open_failures() == expected_after[number]
    consumer.handle({"Records": b[:4]})
    consumer.handle({"Records": [*b[:4], *a]})
    assert gauge.open_failures() == 1
    totals = gauge.total(SINCE, UNTIL)
    assert totals.counts[Transition.FAILED] == 4 and totals.counts[Transition.REDRIVEN] == 2


def test_sequence_numbers_of_different_lengths_compare_as_numbers(ddb: Any, rollups_table: str) -> None:
    consumer = make_consumer(ddb, rollups_table)
    records = [
        change("r", None, "PENDING", "9", T0),
        change("r", "PENDING", "FAILED", "10", T0 + 1),  # "10" < "9" as text: must still count
        change("r", "FAILED", "PENDING", "100000000000000000000", T0 + 2),
    ]
    for record in records:
        assert consumer.handle({"Records": [record]})[0] == {"batchItemFailures": []}
    consumer.handle({"Records": records[:2]})
    totals = reader(ddb, rollups_table).total(SINCE, UNTIL)
    assert totals.counts[Transition.ACCEPTED] == 1
    assert totals.counts[Transition.FAILED] == 1
    assert totals.counts[Transition.REDRIVEN] == 1


def test_a_bad_record_fails_its_whole_batch_and_writes_nothing(ddb: Any, rollups_table: str) -> None:
    consumer = make_consumer(ddb, rollups_table)
    good = change("r", None, "PENDING", "500", T0)
    keys_only = change("s", "PENDING", "FAILED", "501", T0)
    keys_only["dynamodb"].pop("OldImage")
    response, report = consumer.handle({"Records": [good, keys_only]})
    assert response == {"batchItemFailures": [{"itemIdentifier": "500"}]}
    assert report is None
    assert ddb.scan(TableName=rollups_table)["Items"] == []
    with pytest.raises(ValueError, match="Records"):
        consumer.handle({"records": []})
    assert consumer.handle({"Records": []})[0] == {"batchItemFailures": []}


def test_ttl_expiry_is_counted_once(ddb: Any, rollups_table: str) -> None:
    consumer = make_consumer(ddb, rollups_table)
    gone = change("r", "SUCCEEDED", None, "77", T0)
    gone["userIdentity"] = TTL_PRINCIPAL
    gone["dynamodb"]["ApproximateCreationDateTime"] = T0 // 1000
    consumer.handle({"Records": [gone]})
    consumer.handle({"Records": [gone]})
    assert reader(ddb, rollups_table).total(SINCE, UNTIL).counts[Transition.EXPIRED] == 1


def test_a_hot_minute_is_spread_over_the_write_shards(ddb: Any, rollups_table: str) -> None:
    consumer = make_consumer(ddb, rollups_table)
    for batch in range(40):  # 40 batches, all in one minute
        records = [
            change(f"r{batch}-{n}", None, "PENDING", str(10_000 + batch * 10 + n), T0) for n in range(5)
        ]
        consumer.handle({"Records": records})
    minute_items = [
        entry
        for entry in ddb.scan(TableName=rollups_table)["Items"]
        if entry[PK]["S"].startswith(f"{Grain.MINUTE}:")
    ]
    assert len({entry[PK]["S"] for entry in minute_items}) == 4  # every shard took some of the batches
    assert reader(ddb, rollups_table).total(SINCE, UNTIL).counts[Transition.ACCEPTED] == 200


def test_a_new_stream_of_the_same_table_starts_a_new_ledger(ddb: Any, rollups_table: str) -> None:
    # Disabling and enabling a table's stream gives a new stream whose numbers may start lower again.
    consumer = make_consumer(ddb, rollups_table)
    old = change("r", None, "PENDING", "900", T0)
    new = change("r", "PENDING", "FAILED", "5", T0 + 1)
    new["eventSourceARN"] = old["eventSourceARN"].rsplit("/", 1)[0] + "/2027-01-01T00:00:00.000"
    consumer.handle({"Records": [old]})
    consumer.handle({"Records": [new]})
    consumer.handle({"Records": [new]})
    totals = reader(ddb, rollups_table).total(SINCE, UNTIL)
    assert (totals.counts[Transition.ACCEPTED], totals.counts[Transition.FAILED]) == (1, 1)


def test_the_rollups_table_is_created_from_the_template_with_its_ttl(ddb: Any, rollups_table: str) -> None:
    ttl = ddb.describe_time_to_live(TableName=rollups_table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
    assert ttl["AttributeName"] == "ttl"
