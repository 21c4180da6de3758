"""Reading rollups for a time range: one Query per day and write shard, summed over the shards.

What a range costs depends on the number of buckets in it (minutes or hours), never on the number of
requests: ``items_read`` counts the rollup items read, for the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from streamdesk_rollups.schema import (
    GROUP_ERROR_TYPE,
    GROUP_PATTERN,
    MS_PER_DAY,
    OPEN_FAILURES,
    PK,
    SEPARATOR,
    SK,
    Grain,
    bucket_start,
    gauge_pk,
    group_pk,
    rollup_pk,
)

from backend.rollups.model import Rollup, add_item

BATCH_GET_LIMIT: Final = 100
MAX_PARALLEL_QUERIES: Final = 8  # a range's partitions (day x write shard) are read concurrently
# One pool for the process, its threads started once: starting threads per read cost more than the reads.
_QUERIES: Final = ThreadPoolExecutor(
    max_workers=MAX_PARALLEL_QUERIES, thread_name_prefix="streamdesk-rollups"
)
UNKNOWN_GROUP: Final = "(unknown group)"  # a count whose group item is missing (it expired first)


class RollupReader:
    def __init__(self, client: Any, table_name: str, write_shards: int) -> None:
        if write_shards < 1:
            raise ValueError(f"write shards must be at least 1, got {write_shards}")
        self._client = client
        self._table = table_name
        self._shards = write_shards
        self.items_read = 0

    def buckets(
        self,
        since_ms: int,
        until_ms: int,
        grain: Grain = Grain.MINUTE,
        *,
        name_groups: bool = True,
        only: Sequence[str] = (),
    ) -> dict[int, Rollup]:
        """Bucket start (epoch ms) -> the rollup of that bucket, for buckets starting in [since, until].

        ``name_groups=False`` leaves the failure groups' texts empty (no BatchGetItem of group items), for
        a reader that needs the numbers only. ``only`` names the attributes to read (a projection, e.g.
        one counter: a busy hour's item holds hundreds of sketch bins and group counters)."""
        if until_ms < since_ms:
            raise ValueError(f"the range ends ({until_ms}) before it starts ({since_ms})")
        first = bucket_start(since_ms, grain)
        keys = [
            rollup_pk(grain, day * MS_PER_DAY, shard)
            for day in range(first // MS_PER_DAY, until_ms // MS_PER_DAY + 1)
            for shard in range(self._shards)
        ]
        # Each partition is summed as its pages arrive, so that only a few pages of raw items are held at
        # once (a busy week's raw items take a few hundred MB as Python objects; the sums a few MB).
        parts = list(_QUERIES.map(lambda pk: self._sum_partition(pk, first, until_ms, only), keys))
        found: dict[int, Rollup] = {}
        for sums, read in parts:
            self.items_read += read
            for start, rollup in sums.items():
                if start in found:
                    found[start].merge(rollup)
                else:
                    found[start] = rollup
        if name_groups:
            self._name_groups(found.values())
        return dict(sorted(found.items()))

    def total(
        self,
        since_ms: int,
        until_ms: int,
        grain: Grain = Grain.MINUTE,
        *,
        name_groups: bool = True,
        only: Sequence[str] = (),
    ) -> Rollup:
        total = Rollup()
        for rollup in self.buckets(since_ms, until_ms, grain, name_groups=name_groups, only=only).values():
            total.merge(rollup)
        return total

    def _name_groups(self, rollups: Iterable[Rollup]) -> None:
        """Fill in each failure group's type and pattern from its group item (one BatchGet per 100)."""
        groups = [group for rollup in rollups for group in rollup.groups.items()]
        texts = self.group_texts({key for key, _ in groups})
        for key, group in groups:
            group.error_type, group.pattern = texts.get(key, (UNKNOWN_GROUP, UNKNOWN_GROUP))

    def group_texts(self, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
        """Group key -> (error type, pattern), for the keys that have a group item."""
        wanted = sorted(set(keys))
        found: dict[str, tuple[str, str]] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            pending: list[dict[str, Any]] = [
                {PK: {"S": group_pk(key)}, SK: {"N": "0"}} for key in wanted[start : start + BATCH_GET_LIMIT]
            ]
            while pending:
                answer = self._client.batch_get_item(RequestItems={self._table: {"Keys": pending}})
                for entry in answer.get("Responses", {}).get(self._table, []):
                    key = entry[PK]["S"].split(SEPARATOR, 1)[1]
                    found[key] = (entry[GROUP_ERROR_TYPE]["S"], entry[GROUP_PATTERN]["S"])
                    self.items_read += 1
                pending = list((answer.get("UnprocessedKeys") or {}).get(self._table, {}).get("Keys", []))
        return found

    def open_failures(self) -> int:
        """The live gauge: FAILED entered minus FAILED left, summed over the write shards."""
        keys = [{PK: {"S": gauge_pk(shard)}, SK: {"N": "0"}} for shard in range(self._shards)]
        answer = self._client.batch_get_item(
            RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
        )
        entries = answer.get("Responses", {}).get(self._table, [])
        self.items_read += len(entries)
        return sum(int(entry.get(OPEN_FAILURES, {}).get("N", "0")) for entry in entries)

    def _sum_partition(
        self, pk: str, first_ms: int, until_ms: int, only: Sequence[str]
    ) -> tuple[dict[int, Rollup], int]:
        """Bucket start -> the sum of one partition's items, and how many items were read."""
        sums: dict[int, Rollup] = {}
        read = 0
        for page in self._pages(pk, first_ms, until_ms, only):
            read += len(page)
            for entry in page:
                add_item(sums.setdefault(int(entry[SK]["N"]), Rollup()), entry)
        return sums, read

    def _pages(
        self, pk: str, first_ms: int, until_ms: int, only: Sequence[str] = ()
    ) -> Iterator[list[dict[str, Any]]]:
        names = {"#pk": PK, "#sk": SK} | {f"#a{number}": name for number, name in enumerate(only)}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :first AND :until",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {
                ":pk": {"S": pk},
                ":first": {"N": str(first_ms)},
                ":until": {"N": str(until_ms)},
            },
        }
        if only:
            kwargs["ProjectionExpression"] = ", ".join(names)
        while True:
            page = self._client.query(**kwargs)
            yield list(page.get("Items", []))  # counted in items_read by the caller (one thread)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
