"""Paged reads of the sharded indexes: one :class:`IndexQuery` per index partition, and the newest-first
:class:`Merger` of many. Lists read ``byTime`` ("<epoch day>:<shard>" -> createdAt) and ``byState``
("<status>:<shard>" -> createdAt); see docs/internal-contracts.md."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from streamdesk_processor.item import CREATED_AT, ID

from backend.store.expressions import Expression, status_filter, summary_projection
from backend.store.items import summary_from_item
from backend.store.models import RequestSummary

INDEX_BY_TIME: Final = "byTime"
INDEX_BY_STATE: Final = "byState"
MIN_CHUNK: Final = 10  # smallest Limit of a paging query: tiny queries cost a round trip each

# Runs one Query (its parameters) and returns DynamoDB's answer; outages raise StoreUnavailable.
RunQuery = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class IndexQuery:
    """One newest-first Query of one index partition (a shard of a day or of a state), read in chunks,
    with a resumable position."""

    index: str
    key_name: str
    key_value: str
    since_ms: int | None
    until_ms: int | None
    states: frozenset[str]
    # Where the unconsumed items begin: None = the top, else the key of the item just before them.
    mark: dict[str, Any] | None = None
    # Where the next Query starts (LastEvaluatedKey of the previous one); None with fetched=False = the top.
    start: dict[str, Any] | None = None
    done: bool = False
    buffer: deque[tuple[RequestSummary, dict[str, Any]]] = field(default_factory=deque)

    def key_of(self, created_at: int, request_id: str) -> dict[str, Any]:
        return {
            self.key_name: {"S": self.key_value},
            CREATED_AT: {"N": str(created_at)},
            ID: {"S": request_id},
        }

    def query_params(
        self, table: str, limit: int | None, start: dict[str, Any] | None, count_only: bool = False
    ) -> dict[str, Any]:
        expr = Expression()
        key = f"{expr.name(self.key_name)} = {expr.value({'S': self.key_value})}"
        # Placeholders are created only when used: DynamoDB rejects unused ones.
        if self.since_ms is not None or self.until_ms is not None:
            created = expr.name(CREATED_AT)
        if self.since_ms is not None and self.until_ms is not None:
            lo, hi = expr.value({"N": str(self.since_ms)}), expr.value({"N": str(self.until_ms)})
            key += f" AND {created} BETWEEN {lo} AND {hi}"
        elif self.since_ms is not None:
            key += f" AND {created} >= {expr.value({'N': str(self.since_ms)})}"
        elif self.until_ms is not None:
            key += f" AND {created} <= {expr.value({'N': str(self.until_ms)})}"
        params: dict[str, Any] = {
            "TableName": table,
            "IndexName": self.index,
            "KeyConditionExpression": key,
            "ScanIndexForward": False,
        }
        if count_only:
            params["Select"] = "COUNT"  # no attribute travels
        else:
            params["ProjectionExpression"] = summary_projection(expr)
        by_status = status_filter(expr, self.states)
        if by_status:
            params["FilterExpression"] = by_status
        if limit is not None:
            params["Limit"] = limit
        if start is not None:
            params["ExclusiveStartKey"] = start
        params.update(expr.params())
        return params

    # Token state: absent = top, 0 = done, [createdAt, id] = resume after that item.
    def state(self) -> Any:
        position = self.mark if self.buffer else self.start
        if not self.buffer and self.done:
            return 0
        if position is None:
            return None
        return [int(position[CREATED_AT]["N"]), position[ID]["S"]]

    def restore(self, state: Any) -> None:
        if state == 0:
            self.done = True
        elif isinstance(state, list) and len(state) == 2:
            self.mark = self.start = self.key_of(int(state[0]), str(state[1]))
        elif state is not None:
            raise ValueError("malformed page token")


@dataclass
class Consumed:
    query: IndexQuery
    entry: tuple[RequestSummary, dict[str, Any]]
    previous_mark: dict[str, Any] | None


class Merger:
    """Newest-first merge of index queries. ``tiers`` are groups of queries whose items are all newer than
    every item of the next group (one epoch day each for byTime), so later tiers are not read until needed."""

    def __init__(self, run_query: RunQuery, table: str, tiers: list[list[IndexQuery]], want: int) -> None:
        self.run_query = run_query
        self.table = table
        self.tiers = tiers
        self.want = want
        self.examined = 0

    def _fetch(self, query: IndexQuery, active: int) -> None:
        limit = max(MIN_CHUNK, math.ceil(self.want / max(active, 1)) + 1)
        answer = self.run_query(query.query_params(self.table, limit, query.start))
        self.examined += int(answer.get("ScannedCount", 0))
        query.mark = query.start
        for item in answer.get("Items", []):
            summary = summary_from_item(item)
            created = summary.created_at if summary.created_at is not None else 0
            query.buffer.append((summary, query.key_of(created, summary.id)))
        query.start = answer.get("LastEvaluatedKey")
        query.done = query.start is None

    def head(self) -> IndexQuery | None:
        """The query whose next item is the newest of all (fetching as needed), or None when exhausted."""
        for tier in self.tiers:
            live = [s for s in tier if s.buffer or not s.done]
            if not live:
                continue
            for query in live:
                while not query.buffer and not query.done:
                    self._fetch(query, len(live))
            ready = [s for s in live if s.buffer]
            if ready:
                # Ties on createdAt only occur between different states of one shard; any order is fine.
                return max(ready, key=lambda s: s.buffer[0][0].created_at or 0)
        return None

    def take(self) -> Consumed | None:
        query = self.head()
        if query is None:
            return None
        previous = query.mark
        entry = query.buffer.popleft()
        query.mark = entry[1]
        return Consumed(query, entry, previous)

    def give_back(self, consumed: Sequence[Consumed]) -> None:
        """Undo ``take`` for these items, latest first."""
        for record in reversed(consumed):
            record.query.buffer.appendleft(record.entry)
            record.query.mark = record.previous_mark
