"""Rollups for a test table, as the running stack would have them: the real rollups consumer over the
requests table's stream (everything the stream tells, each record once), then the rebuild's recount adding
what the items tell and the stream did not (items a seed wrote straight into a final state carry no
``accepted``). Safe to call again after more changes: the ledger counts only the new records.

Shared by the failures, health and overview GUI fixtures (one helper, one place)."""

from __future__ import annotations

from typing import Any, Final

from streamdesk_processor import item

from backend.rollups.rebuild import rebuild
from tests.processor_events import read_stream_records
from tests.rollups_workload import create_rollups_table, make_consumer

BATCH: Final = 100  # the template's RollupBatchSize order of magnitude


def seed_rollups(client: Any, requests_table: str, rollups_table: str, write_shards: int) -> None:
    """Create ``rollups_table`` if it is not there and bring it up to date with ``requests_table``."""
    try:
        client.describe_table(TableName=rollups_table)
    except client.exceptions.ResourceNotFoundException:
        create_rollups_table(client, rollups_table)
    records = read_stream_records(client.meta.endpoint_url, requests_table)
    consumer = make_consumer(client, rollups_table, shards=write_shards)
    for start in range(0, len(records), BATCH):
        response, _ = consumer.handle({"Records": records[start : start + BATCH]})
        assert response == {"batchItemFailures": []}, "the rollups consumer refused a seeded record"
    span = _time_span(client, requests_table)
    if span is not None:
        rebuild(client, requests_table, rollups_table, write_shards, *span, apply=True)


def _time_span(client: Any, table: str) -> tuple[int, int] | None:
    """The earliest and latest time any item of ``table`` carries (created, finished or resolved)."""
    times: list[int] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        for entry in page["Items"]:
            for name in (item.CREATED_AT, item.FINISHED_AT, item.UPDATED_AT):
                if name in entry:
                    times.append(int(float(entry[name]["N"])))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return (min(times), max(times)) if times else None
