"""The request store: every read of the requests table the dashboard and the CLI make.

Lists read the sparse, write-sharded indexes (``byTime`` and ``byState``, see :mod:`backend.store.index_query`
and docs/internal-contracts.md). They never read request bodies (the indexes do not project them, and every
query names what it wants) and never the whole table: their cost grows with what they show. Only ``get`` and
``export`` read bodies, and only an export whose filter narrows nothing scans.

Paging across shards merges the shards' newest-first queries. The opaque token records, per shard query,
where the next page resumes (the key of the last item consumed from it, its LastEvaluatedKey, or "done").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, cast

from streamdesk_processor.item import (
    BUCKET_SEPARATOR,
    ID,
    MS_PER_DAY,
    REQUEST,
    STATE_BUCKET,
    STATUS,
    TIME_BUCKET,
    Status,
)

from backend.clock import now_ms
from backend.rollups.reader import RollupReader
from backend.settings import Settings
from backend.store import page_token
from backend.store.calls import GuardedClient, TableCalls, dynamodb_client, rollups_client
from backend.store.expressions import Expression, summary_projection
from backend.store.index_query import (
    INDEX_BY_STATE,
    INDEX_BY_TIME,
    MIN_CHUNK,
    Consumed,
    IndexQuery,
    Merger,
)
from backend.store.items import detail_from_item, summary_from_item
from backend.store.live_state import LiveState, LiveStateReader
from backend.store.models import (
    FILTER_STATES,
    OPEN_STATES,
    Page,
    RequestDetail,
    RequestFilter,
    RequestSummary,
    TableInfo,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_PARALLEL_QUERIES: Final = 8
BATCH_GET_MAX: Final = 100  # DynamoDB's limit per BatchGetItem


class RequestStore:
    """Reads requests for the dashboard. Thread-safe (boto3 clients are); holds no cache."""

    def __init__(self, settings: Settings, client: DynamoDBClient | None = None) -> None:
        self.settings = settings
        self.table = settings.table
        self.shards = settings.index_shards
        self.client = client if client is not None else dynamodb_client(settings)
        self._call = TableCalls(self.client, self.table)

    @property
    def endpoint(self) -> str:
        return self._call.endpoint

    # ----------------------------------------------------------------------------- helpers
    def _query(self, params: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self._call(self.client.query, **params))

    def _time_queries(
        self, since_ms: int, until_ms: int, states: frozenset[str] = frozenset()
    ) -> list[list[IndexQuery]]:
        """byTime partitions covering the range, grouped per epoch day, newest day first."""
        tiers = []
        for day in range(until_ms // MS_PER_DAY, since_ms // MS_PER_DAY - 1, -1):
            tiers.append(
                [
                    IndexQuery(
                        INDEX_BY_TIME,
                        TIME_BUCKET,
                        f"{day}{BUCKET_SEPARATOR}{shard}",
                        since_ms,
                        until_ms,
                        states,
                    )
                    for shard in range(self.shards)
                ]
            )
        return tiers

    def _open_queries(
        self, states: Iterable[str], since_ms: int | None, until_ms: int | None = None
    ) -> list[IndexQuery]:
        chosen = sorted(set(states))
        unknown = set(chosen) - OPEN_STATES
        if unknown:
            raise ValueError(
                f"not open states: {sorted(unknown)} (the open index holds {sorted(OPEN_STATES)})"
            )
        return self._state_queries(chosen, since_ms, until_ms)

    def _state_queries(
        self, states: Iterable[str], since_ms: int | None, until_ms: int | None = None
    ) -> list[IndexQuery]:
        return [
            IndexQuery(
                INDEX_BY_STATE,
                STATE_BUCKET,
                f"{state}{BUCKET_SEPARATOR}{shard}",
                since_ms,
                until_ms,
                frozenset(),
            )
            for state in states
            for shard in range(self.shards)
        ]

    def _read_all(self, query: IndexQuery, count_only: bool = False) -> tuple[list[RequestSummary], int, int]:
        """Every item of one query: (summaries, count, items read)."""
        items: list[RequestSummary] = []
        count = examined = 0
        start: dict[str, Any] | None = None
        while True:
            params = query.query_params(self.table, None, start, count_only)
            answer = self._call(self.client.query, **params)
            examined += int(answer.get("ScannedCount", 0))
            count += int(answer.get("Count", 0))
            items.extend(summary_from_item(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return items, count, examined

    def _read_queries(
        self, queries: Sequence[IndexQuery], count_only: bool = False
    ) -> tuple[list[RequestSummary], int, int]:
        """Every item of every query, the queries in parallel (DynamoDB serves partitions concurrently)."""
        if not queries:
            return [], 0, 0
        workers = min(MAX_PARALLEL_QUERIES, len(queries))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="streamdesk-query") as pool:
            results = list(pool.map(lambda s: self._read_all(s, count_only), queries))
        items = [item for part in results for item in part[0]]
        items.sort(key=lambda s: (s.created_at or 0, s.id), reverse=True)
        return items, sum(r[1] for r in results), sum(r[2] for r in results)

    def _batch_get(self, ids: Sequence[str], projection: Sequence[str] | None = None) -> dict[str, dict]:
        """Items by id (typed), in chunks of 100, retrying what DynamoDB leaves unprocessed."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for offset in range(0, len(unique), BATCH_GET_MAX):
            request: dict[str, Any] = {
                "Keys": [{ID: {"S": i}} for i in unique[offset : offset + BATCH_GET_MAX]]
            }
            if projection:
                expr = Expression()
                request["ProjectionExpression"] = ", ".join(expr.name(n) for n in projection)
                request.update(expr.params())
            pending: dict[str, Any] = {self.table: request}
            delay = 0.05
            while pending:
                answer = self._call(self.client.batch_get_item, RequestItems=pending)
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[item[ID]["S"]] = item
                pending = answer.get("UnprocessedKeys") or {}
                if pending:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
        return found

    def _text_matches(self, candidates: Sequence[RequestSummary], text: str) -> tuple[set[str], int]:
        """Ids whose error message or body contains ``text`` (case-insensitive), and the items read.

        The error message comes with the summary; bodies are read only for the other candidates."""
        needle = text.casefold()
        matched = {c.id for c in candidates if c.error_message and needle in c.error_message.casefold()}
        rest = [c.id for c in candidates if c.id not in matched]
        bodies = self._batch_get(rest, projection=(ID, REQUEST)) if rest else {}
        for request_id, item in bodies.items():
            body = item.get(REQUEST, {}).get("S")
            if isinstance(body, str) and needle in body.casefold():
                matched.add(request_id)
        return matched, len(bodies)

    # ------------------------------------------------------------------------------ reads
    def read_window(self, since_ms: int, until_ms: int | None = None) -> tuple[list[RequestSummary], int]:
        """``window`` and the number of items read."""
        until = now_ms() if until_ms is None else until_ms
        if until < since_ms:
            return [], 0
        queries = [s for tier in self._time_queries(since_ms, until) for s in tier]
        items, _, examined = self._read_queries(queries)
        return items, examined

    def read_open(
        self, states: Iterable[str] = tuple(OPEN_STATES), since_ms: int | None = None
    ) -> tuple[list[RequestSummary], int]:
        """``open_requests`` and the number of items read."""
        items, _, examined = self._read_queries(self._open_queries(states, since_ms))
        return items, examined

    def open_requests(
        self,
        states: Iterable[str] = tuple(OPEN_STATES),
        since_ms: int | None = None,
    ) -> list[RequestSummary]:
        """Every request in one of ``states`` (open states only) whatever its age (or created since
        ``since_ms``), newest first, via ``byState``."""
        return self.read_open(states, since_ms)[0]

    def newest_open(self, states: Iterable[str], limit: int) -> tuple[list[RequestSummary], bool]:
        """The ``limit`` newest requests in ``states`` (open states), newest first, and whether there are
        more. Reads at most ``limit`` index items per state and shard (each shard's newest come first), so
        its cost is bounded whatever the backlog."""
        queries = self._open_queries(states, None)
        if not queries:
            return [], False
        workers = min(MAX_PARALLEL_QUERIES, len(queries))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="streamdesk-query") as pool:
            results = list(pool.map(lambda query: self._read_newest(query, limit), queries))
        items = sorted(
            (item for part, _ in results for item in part),
            key=lambda s: (s.created_at or 0, s.id),
            reverse=True,
        )
        return items[:limit], len(items) > limit or any(more for _, more in results)

    def _read_newest(self, query: IndexQuery, limit: int) -> tuple[list[RequestSummary], bool]:
        """Up to ``limit`` items of one query (newest first), and whether the query holds more."""
        items: list[RequestSummary] = []
        start: dict[str, Any] | None = None
        while len(items) < limit:
            params = query.query_params(self.table, limit - len(items), start)
            answer = self._call(self.client.query, **params)
            items.extend(summary_from_item(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return items, False
        return items, True

    def resolved_requests(self) -> list[RequestSummary]:
        """Every failure closed without a retry and not deleted yet, newest first, via ``byState``.

        The state index holds every state (it is not sparse); resolved failures are few enough to list in
        full because their TTL (``ClosedRetentionDays``) bounds how many there are."""
        return self._read_queries(self._state_queries([Status.RESOLVED.value], None))[0]

    def count_open(self, states: Iterable[str] = tuple(OPEN_STATES)) -> tuple[dict[str, int], int]:
        """How many requests are in each open state (Select=COUNT: no attributes travel), and items read."""
        counts: dict[str, int] = {}
        examined = 0
        for state in sorted(set(states)):
            _, count, read = self._read_queries(self._open_queries([state], None), count_only=True)
            counts[state] = count
            examined += read
        return counts, examined

    @cached_property
    def rollups_client(self) -> DynamoDBClient:
        """The client the rollups reader uses (``calls.rollups_client``), made once per store."""
        return rollups_client(self.settings)

    def rollups(self) -> RollupReader:
        """A reader of this stack's rollups (its own ``items_read``), the one way the dashboard builds one:
        the fast Query client, and an outage or a missing rollups table is :class:`StoreUnavailable`."""
        return RollupReader(
            GuardedClient(self.rollups_client), self.settings.rollups_table, self.settings.rollups_shards
        )

    def live_state(self, now_ms: int, stuck_after_ms: int) -> LiveState:
        """Pending, processing, stuck and the oldest pending wait right now, from bounded ``byState``
        queries (see :mod:`backend.store.live_state`): the cost does not grow with the backlog's size."""
        return LiveStateReader(
            lambda **params: self._call(self.client.query, **params), self.table, self.shards
        ).read(now_ms, stuck_after_ms)

    def list_requests(self, flt: RequestFilter, page_size: int, token: str | None = None) -> Page:
        """One page of requests matching ``flt``, newest first; pass ``next_token`` back for the next.

        An exact id is one GetItem. Only open states: ``byState``. Otherwise ``byTime`` over the range
        (default: the 24 hours before the first page) with a status filter. A text search reads the
        bodies of the candidates only. With a text search the last page can be empty.
        Raises ValueError for an unknown state or a token from another filter.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if flt.request_id:
            return self._list_one(flt.request_id.strip())
        unknown = set(flt.states) - FILTER_STATES
        if unknown:
            raise ValueError(f"unknown states: {sorted(unknown)}")
        payload = page_token.decode(token) if token else None
        plan = "open" if flt.states and flt.states <= OPEN_STATES else "time"
        fingerprint = page_token.fingerprint(flt, plan)
        if payload is not None and payload.get("f") != fingerprint:
            raise ValueError("the page token belongs to another filter")

        if plan == "open":
            since, until = flt.since_ms, flt.until_ms
            tiers = [self._open_queries(flt.states, since, until)]
        else:
            if payload is not None:
                since, until = int(payload["lo"]), int(payload["hi"])
            else:
                window = flt.list_range(now_ms())
                assert window is not None  # the "time" plan is never a list of open states only
                since, until = window
            tiers = self._time_queries(since, until, frozenset(flt.states)) if since <= until else []
        if payload is not None:
            states = payload.get("s", {})
            for tier in tiers:
                for query in tier:
                    query.restore(states.get(query.key_value))

        merger = Merger(self._query, self.table, tiers, page_size + 1)
        items: list[RequestSummary] = []
        extra_reads = 0
        if flt.text:
            extra_reads = self._fill_with_text(merger, items, page_size, flt.text)
            more = merger.head() is not None
        else:
            while len(items) < page_size:
                taken = merger.take()
                if taken is None:
                    break
                items.append(taken.entry[0])
            more = merger.head() is not None  # peeks: no empty last page
        next_token = None
        if more:
            state = {s.key_value: s.state() for tier in tiers for s in tier if s.state() is not None}
            next_token = page_token.encode(
                {"v": page_token.TOKEN_VERSION, "f": fingerprint, "lo": since, "hi": until, "s": state}
            )
        return Page(items=items, next_token=next_token, examined=merger.examined + extra_reads)

    def _fill_with_text(self, merger: Merger, items: list[RequestSummary], page_size: int, text: str) -> int:
        """Fill ``items`` with candidates matching ``text``, testing them in batches; returns bodies read."""
        reads = 0
        while len(items) < page_size:
            batch: list[Consumed] = []
            while len(batch) < min(BATCH_GET_MAX, max(page_size, MIN_CHUNK)):
                taken = merger.take()
                if taken is None:
                    break
                batch.append(taken)
            if not batch:
                break
            matched, read = self._text_matches([c.entry[0] for c in batch], text)
            reads += read
            for position, consumed in enumerate(batch):
                if len(items) == page_size:
                    merger.give_back(batch[position:])
                    break
                if consumed.entry[0].id in matched:
                    items.append(consumed.entry[0])
        return reads

    def _list_one(self, request_id: str) -> Page:
        if not _possible_id(request_id):
            return Page(items=[], next_token=None, examined=0)
        expr = Expression()
        answer = self._call(
            self.client.get_item,
            TableName=self.table,
            Key={ID: {"S": request_id}},
            ConsistentRead=True,
            ProjectionExpression=summary_projection(expr),
            **expr.params(),
        )
        item = answer.get("Item")
        return Page(
            items=[summary_from_item(item)] if item else [], next_token=None, examined=int(bool(item))
        )

    def get(self, request_id: str) -> RequestDetail | None:
        """One request with every attribute, body included (consistent read), or None."""
        if not _possible_id(request_id):
            return None
        answer = self._call(
            self.client.get_item, TableName=self.table, Key={ID: {"S": request_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return detail_from_item(item) if item else None

    def export(self, flt: RequestFilter) -> Iterator[RequestDetail]:
        """Every request matching ``flt`` in full, for CSV/JSON export.

        The same requests, in the same order, as paging through ``list_requests`` (newest first), with
        the same default range when the filter gives none: an export reads through the indexes like the
        list, never a scan of the whole table (on AWS a scan's cost grows with the table, not the export)."""
        if flt.request_id:
            detail = self.get(flt.request_id.strip())
            if detail is not None:
                yield detail
            return
        token: str | None = None
        while True:
            page = self.list_requests(flt, BATCH_GET_MAX, token)
            full = self._batch_get([s.id for s in page.items])
            for summary in page.items:
                item = full.get(summary.id)
                if item is not None:  # deleted since the list was read (TTL): nothing to export
                    yield detail_from_item(item)
            token = page.next_token
            if token is None:
                return

    def statuses(self, request_ids: Sequence[str]) -> dict[str, str]:
        """The current status of each request (BatchGetItem of id and status only; absent: deleted)."""
        found = self._batch_get(list(dict.fromkeys(request_ids)), projection=(ID, STATUS))
        return {request_id: str(item.get(STATUS, {}).get("S", "")) for request_id, item in found.items()}

    def has_any(self) -> bool:
        """Whether the table holds any request at all: one item read, whatever the table's size."""
        answer = self._call(
            self.client.scan, TableName=self.table, Limit=1, ProjectionExpression="#id",
            ExpressionAttributeNames={"#id": ID},
        )  # fmt: skip
        return bool(answer.get("Items"))

    def table_info(self) -> TableInfo:
        """The table's status, approximate size, stream and TTL settings."""
        table = self._call(self.client.describe_table, TableName=self.table)["Table"]
        ttl = self._call(self.client.describe_time_to_live, TableName=self.table).get(
            "TimeToLiveDescription", {}
        )
        stream: Mapping[str, Any] = table.get("StreamSpecification") or {}
        return TableInfo(
            name=str(table.get("TableName", self.table)),
            status=str(table.get("TableStatus", "")),
            item_count=int(table.get("ItemCount", 0)),
            stream_enabled=bool(stream.get("StreamEnabled", False)),
            stream_view_type=stream.get("StreamViewType"),
            ttl_status=ttl.get("TimeToLiveStatus"),
            ttl_attribute=ttl.get("AttributeName"),
            latest_stream_arn=table.get("LatestStreamArn"),
        )


MAX_KEY_BYTES = 2048  # DynamoDB's limit for a partition key value


def _possible_id(request_id: str) -> bool:
    """Whether ``request_id`` could be a key at all: DynamoDB refuses an empty or over-long key value
    (a ValidationException), and no such request can exist, so there is nothing to ask."""
    return 0 < len(request_id.encode("utf-8")) <= MAX_KEY_BYTES


def _detail_matches(detail: RequestDetail, needle: str) -> bool:
    message = detail.summary.error_message or ""
    return needle in (detail.body or "").casefold() or needle in message.casefold()
