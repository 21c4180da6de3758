"""What is open right now, from bounded queries of the ``byState`` index (partition "<status>:<shard>",
sort key ``createdAt``), whatever the backlog:

- pending and processing: ``Select=COUNT`` per shard (exact; no item travels, DynamoDB evaluates the
  index entries server-side, about 4,000 to the megabyte page);
- stuck: ``Select=COUNT`` bounded by the sort key (``createdAt`` at or before the stuck cutoff: a wait
  starts at or after creation), then filtered on the wait's real start (``redrivenAt`` for a pending
  request, ``startedAt`` for a processing one), so only old open requests are evaluated, never the fresh
  backlog;
- the oldest pending wait: per shard an ascending query of a few items, read on only while an item
  created earlier could still have waited longer (a redrive restarts a wait);
- cancelled and resolved requests still kept (until their TTL, ``ClosedRetentionDays``): ``Select=COUNT``.

The definitions are those of :mod:`backend.computed.stats` (``waiting_since_ms``, ``stuck_for_ms``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from streamdesk_processor.item import (
    BUCKET_SEPARATOR,
    CREATED_AT,
    REDRIVEN_AT,
    STARTED_AT,
    STATE_BUCKET,
    Status,
)

from backend.store.expressions import Expression
from backend.store.index_query import INDEX_BY_STATE

RunQuery = Callable[..., Mapping[str, Any]]
OLDEST_CHUNK: Final = 5  # items per ascending query of the oldest-pending search (one usually decides)
MAX_PARALLEL: Final = 8
# One pool for the process, its threads started once: starting threads per read cost more than the reads.
_QUERIES: Final = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="streamdesk-live")


@dataclass(frozen=True)
class LiveState:
    """Open requests right now. ``items_read`` counts the index items returned; ``items_counted`` the
    index entries DynamoDB evaluated for the counts (no attribute of them travels)."""

    pending: int
    processing: int
    stuck: int
    oldest_pending_age_ms: int | None
    cancelled: int  # closed by a person and not deleted yet (TTL: ClosedRetentionDays)
    resolved: int
    items_read: int
    items_counted: int


@dataclass(frozen=True)
class _Answer:
    count: int = 0
    read: int = 0
    counted: int = 0
    oldest_since: int | None = None


class LiveStateReader:
    """The queries behind :class:`LiveState`, one task per index partition, run in parallel."""

    def __init__(self, query: RunQuery, table: str, shards: int) -> None:
        self._query = query
        self._table = table
        self._shards = shards

    def read(self, now_ms: int, stuck_after_ms: int) -> LiveState:
        cutoff = now_ms - stuck_after_ms - 1  # stuck: waited strictly longer than stuck_after
        tasks: list[tuple[str, Callable[[], _Answer]]] = []
        for shard in range(self._shards):
            pending, processing = _bucket(Status.PENDING, shard), _bucket(Status.PROCESSING, shard)
            tasks += [
                ("pending", partial(self._count, pending, None, None)),
                ("processing", partial(self._count, processing, None, None)),
                ("stuck", partial(self._count, pending, cutoff, REDRIVEN_AT)),
                ("stuck", partial(self._count, processing, cutoff, STARTED_AT)),
                ("oldest", partial(self._oldest, pending)),
                ("cancelled", partial(self._count, _bucket(Status.CANCELLED, shard), None, None)),
                ("resolved", partial(self._count, _bucket(Status.RESOLVED, shard), None, None)),
            ]
        answers = list(_QUERIES.map(lambda task: (task[0], task[1]()), tasks))
        totals = {"pending": 0, "processing": 0, "stuck": 0, "cancelled": 0, "resolved": 0}
        oldest: int | None = None
        for kind, answer in answers:
            if kind == "oldest":
                if answer.oldest_since is not None:
                    oldest = answer.oldest_since if oldest is None else min(oldest, answer.oldest_since)
            else:
                totals[kind] += answer.count
        return LiveState(
            pending=totals["pending"],
            processing=totals["processing"],
            stuck=totals["stuck"],
            oldest_pending_age_ms=None if oldest is None else max(0, now_ms - oldest),
            cancelled=totals["cancelled"],
            resolved=totals["resolved"],
            items_read=sum(answer.read for _, answer in answers),
            items_counted=sum(answer.counted for _, answer in answers),
        )

    def _count(self, bucket: str, cutoff: int | None, wait_start: str | None) -> _Answer:
        """How many items of ``bucket`` (created at or before ``cutoff``, and whose ``wait_start``
        attribute, if present, is at or before it too)."""
        expr = Expression()
        key = f"{expr.name(STATE_BUCKET)} = {expr.value({'S': bucket})}"
        params: dict[str, Any] = {"TableName": self._table, "IndexName": INDEX_BY_STATE, "Select": "COUNT"}
        if cutoff is not None:
            bound = expr.value({"N": str(cutoff)})
            key += f" AND {expr.name(CREATED_AT)} <= {bound}"
            if wait_start is not None:
                start = expr.name(wait_start)
                params["FilterExpression"] = f"attribute_not_exists({start}) OR {start} <= {bound}"
        params["KeyConditionExpression"] = key
        params.update(expr.params())
        count = counted = 0
        while True:
            answer = self._query(**params)
            count += int(answer.get("Count", 0))
            counted += int(answer.get("ScannedCount", 0))
            if "LastEvaluatedKey" not in answer:
                return _Answer(count=count, counted=counted)
            params["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _oldest(self, bucket: str) -> _Answer:
        """The earliest wait start among the pending requests of ``bucket``: oldest created first, until
        the next one was created after the best wait start found (it cannot have waited longer)."""
        expr = Expression()
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": INDEX_BY_STATE,
            "KeyConditionExpression": f"{expr.name(STATE_BUCKET)} = {expr.value({'S': bucket})}",
            "ProjectionExpression": f"{expr.name(CREATED_AT)}, {expr.name(REDRIVEN_AT)}",
            "ScanIndexForward": True,
            "Limit": OLDEST_CHUNK,
        }
        params.update(expr.params())
        best: int | None = None
        read = 0
        while True:
            answer = self._query(**params)
            items: Sequence[dict[str, Any]] = answer.get("Items", [])
            for entry in items:
                read += 1
                created = int(entry[CREATED_AT]["N"])
                if best is not None and created >= best:
                    return _Answer(read=read, oldest_since=best)
                redriven = int(entry[REDRIVEN_AT]["N"]) if REDRIVEN_AT in entry else created
                since = max(created, redriven)
                best = since if best is None else min(best, since)
            if "LastEvaluatedKey" not in answer:
                return _Answer(read=read, oldest_since=best)
            params["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _bucket(status: Status, shard: int) -> str:
    return f"{status.value}{BUCKET_SEPARATOR}{shard}"
