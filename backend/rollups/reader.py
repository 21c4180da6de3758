"""Reading rollups for a time range: one Query per day and write shard, summed over the shards.

What a range costs depends on the number of buckets in it (minutes or hours), never on the number of
requests: ``items_read`` counts the rollup items read, for the benchmark.
"""

from __future__ import annotations

from typing import Any

from streamdesk_rollups.schema import (
    MS_PER_DAY,
    OPEN_FAILURES,
    PK,
    SK,
    Grain,
    bucket_start,
    gauge_pk,
    rollup_pk,
)

from backend.rollups.model import Rollup, rollup_from_item


class RollupReader:
    def __init__(self, client: Any, table_name: str, write_shards: int) -> None:
        if write_shards < 1:
            raise ValueError(f"write shards must be at least 1, got {write_shards}")
        self._client = client
        self._table = table_name
        self._shards = write_shards
        self.items_read = 0

    def buckets(self, since_ms: int, until_ms: int, grain: Grain = Grain.MINUTE) -> dict[int, Rollup]:
        """Bucket start (epoch ms) -> the rollup of that bucket, for buckets starting in [since, until]."""
        if until_ms < since_ms:
            raise ValueError(f"the range ends ({until_ms}) before it starts ({since_ms})")
        first = bucket_start(since_ms, grain)
        found: dict[int, Rollup] = {}
        for day in range(first // MS_PER_DAY, until_ms // MS_PER_DAY + 1):
            for shard in range(self._shards):
                for entry in self._query(rollup_pk(grain, day * MS_PER_DAY, shard), first, until_ms):
                    start = int(entry[SK]["N"])
                    found.setdefault(start, Rollup()).merge(rollup_from_item(entry))
        return dict(sorted(found.items()))

    def total(self, since_ms: int, until_ms: int, grain: Grain = Grain.MINUTE) -> Rollup:
        total = Rollup()
        for rollup in self.buckets(since_ms, until_ms, grain).values():
            total.merge(rollup)
        return total

    def open_failures(self) -> int:
        """The live gauge: FAILED entered minus FAILED left, summed over the write shards."""
        keys = [{PK: {"S": gauge_pk(shard)}, SK: {"N": "0"}} for shard in range(self._shards)]
        answer = self._client.batch_get_item(
            RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
        )
        entries = answer.get("Responses", {}).get(self._table, [])
        self.items_read += len(entries)
        return sum(int(entry.get(OPEN_FAILURES, {}).get("N", "0")) for entry in entries)

    def _query(self, pk: str, first_ms: int, until_ms: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :first AND :until",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {
                ":pk": {"S": pk},
                ":first": {"N": str(first_ms)},
                ":until": {"N": str(until_ms)},
            },
        }
        while True:
            page = self._client.query(**kwargs)
            entries.extend(page.get("Items", []))
            self.items_read += len(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return entries
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
