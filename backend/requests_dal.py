"""Data access for the dashboard: the ONLY dashboard module that talks to DynamoDB.

Lists read the sparse, write-sharded indexes (``byTime``: "<epoch day>:<shard>" -> createdAt, and
``byState``: "<status>:<shard>" -> createdAt; see docs/internal-contracts.md). They never read request
bodies (the indexes do not project them, and every query names what it wants) and never the whole table:
their cost grows with what they show. Only ``get`` and ``export`` read bodies, and only a filter that narrows
nothing makes ``export`` scan.

Paging across shards merges the shards' newest-first queries. The opaque token records, per shard query,
where the next page resumes (the key of the last item consumed from it, its LastEvaluatedKey, or "done").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from streamdesk_processor.item import (
    ATTEMPTS,
    BUCKET_SEPARATOR,
    CREATED_AT,
    ERROR,
    ERROR_MESSAGE,
    ERROR_STEP,
    ERROR_TYPE,
    FINISHED_AT,
    ID,
    LAST_ERROR,
    MS_PER_DAY,
    REDRIVEN_AT,
    REQUEST,
    RESULT,
    STARTED_AT,
    STATE_BUCKET,
    STATUS,
    STEPS,
    TIME_BUCKET,
    TTL,
    UPDATED_AT,
    Status,
)

from backend.settings import Settings

INDEX_BY_TIME = "byTime"
INDEX_BY_STATE = "byState"
OPEN_STATES: frozenset[str] = frozenset({Status.PENDING, Status.PROCESSING, Status.FAILED})
# A filter state for requests whose status is missing or not one of Status.
UNKNOWN_STATE = "UNKNOWN"
FILTER_STATES: frozenset[str] = frozenset({*Status, UNKNOWN_STATE})
DEFAULT_RANGE_MS = 86_400_000  # lists without a range show the last 24 hours

# Short timeouts and one retry: an outage must reach the user as a message within seconds, not minutes.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 2
MAX_PARALLEL_QUERIES = 8
BATCH_GET_MAX = 100  # DynamoDB's limit per BatchGetItem
MIN_CHUNK = 10  # smallest Limit of a paging query: tiny queries cost a round trip each
TOKEN_VERSION = 1

_CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationTokenException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "AccessDeniedException",
    }
)
_UNAVAILABLE_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)

T = TypeVar("T")


class StoreUnavailable(Exception):
    """DynamoDB cannot be used: unreachable, table missing, credentials refused. ``str()`` is for humans."""


@dataclass(frozen=True)
class RequestSummary:
    """What a list shows about one request (never the body)."""

    id: str
    status: str  # raw value, "" if missing
    created_at: int | None  # epoch ms
    started_at: int | None
    finished_at: int | None
    updated_at: int | None
    attempts: int
    ttl: int | None  # epoch SECONDS
    error_type: str | None
    error_message: str | None
    error_step: str | None
    redriven_at: int | None
    malformed: tuple[str, ...] = ()  # attributes missing or of the wrong type


@dataclass(frozen=True)
class RequestDetail:
    """Everything about one request."""

    summary: RequestSummary
    body: str | None
    steps: dict[str, dict[str, Any]]
    result: dict[str, str]
    error: dict[str, Any] | None  # type, message, step, traceback, transient
    last_error: dict[str, Any] | None
    # Every attribute as plain Python: numbers -> int/float, sets -> sorted lists, binary -> base64 text.
    attributes: dict[str, Any]


@dataclass(frozen=True)
class RequestFilter:
    """What a list shows.

    ``states``: raw status values (``Status``) and/or ``"UNKNOWN"`` (missing or odd status); empty = all.
    Only open states (PENDING, PROCESSING, FAILED) -> every such request whatever its age unless a range is
    given; otherwise the range (default: the last 24 hours).
    ``request_id``: one exact id; the other criteria are then ignored.
    ``text``: case-insensitive substring of the request body or of the error message.
    """

    states: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None
    request_id: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[RequestSummary]
    next_token: str | None  # opaque; pass back for the next page; None on the last page
    examined: int  # items DynamoDB read for this page


@dataclass(frozen=True)
class TableInfo:
    name: str
    status: str
    item_count: int  # approximate (DynamoDB refreshes it about every six hours)
    stream_enabled: bool
    stream_view_type: str | None
    ttl_status: str | None
    ttl_attribute: str | None
    latest_stream_arn: str | None = None


# --------------------------------------------------------------------------------------- item parsing
_deserializer = TypeDeserializer()


def plain(value: Any) -> Any:
    """Python value of a typed DynamoDB value or of a deserialised one, made JSON-friendly."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TYPE_TAGS:
        value = _deserializer.deserialize(value)  # type: ignore[arg-type]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=lambda v: (str(type(v)), v))
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3's Binary
        return base64.b64encode(value.value).decode("ascii")
    return value


_TYPE_TAGS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def _number(item: dict[str, Any], name: str, bad: list[str], required: bool = False) -> int | None:
    raw = item.get(name)
    if raw is None:
        if required:
            bad.append(name)
        return None
    if "N" not in raw:
        bad.append(name)
        return None
    try:
        return int(Decimal(raw["N"]))
    except (ArithmeticError, ValueError):
        bad.append(name)
        return None


def _string(typed: dict[str, Any] | None, name: str, bad: list[str], label: str | None = None) -> str | None:
    raw = (typed or {}).get(name)
    if raw is None:
        return None
    if "S" not in raw:
        bad.append(label or name)
        return None
    return str(raw["S"])


def summary_from_item(item: dict[str, Any]) -> RequestSummary:
    """A summary of a typed item (any projection). Never raises: odd attributes land in ``malformed``."""
    bad: list[str] = []
    request_id = _string(item, ID, bad)
    if request_id is None and ID not in bad:
        bad.append(ID)
    status = _string(item, STATUS, bad)
    if (status is None or status not in Status.__members__.values()) and STATUS not in bad:
        bad.append(STATUS)
    created_at = _number(item, CREATED_AT, bad, required=True)
    started_at = _number(item, STARTED_AT, bad)
    finished_at = _number(item, FINISHED_AT, bad)
    updated_at = _number(item, UPDATED_AT, bad)
    attempts = _number(item, ATTEMPTS, bad)
    ttl = _number(item, TTL, bad)
    redriven_at = _number(item, REDRIVEN_AT, bad)
    error_map: dict[str, Any] | None = None
    raw_error = item.get(ERROR)
    if raw_error is not None:
        if "M" in raw_error:
            error_map = raw_error["M"]
        else:
            bad.append(ERROR)
    return RequestSummary(
        id=request_id or "",
        status=status or "",
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        updated_at=updated_at,
        attempts=attempts if attempts is not None else 0,
        ttl=ttl,
        error_type=_string(error_map, ERROR_TYPE, bad, f"{ERROR}.{ERROR_TYPE}"),
        error_message=_string(error_map, ERROR_MESSAGE, bad, f"{ERROR}.{ERROR_MESSAGE}"),
        error_step=_string(error_map, ERROR_STEP, bad, f"{ERROR}.{ERROR_STEP}"),
        redriven_at=redriven_at,
        malformed=tuple(bad),
    )


def _steps(value: Any) -> dict[str, dict[str, Any]]:
    """Completed steps as name -> details, from the map the processor writes (or an older list)."""
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, dict) else {"value": v} for k, v in value.items()}
    if isinstance(value, list):
        steps: dict[str, dict[str, Any]] = {}
        for position, entry in enumerate(value):
            if isinstance(entry, dict):
                details = dict(entry)
                steps[str(details.pop("name", position))] = details
            else:
                steps[str(entry)] = {}
        return steps
    return {}


def detail_from_item(item: dict[str, Any]) -> RequestDetail:
    """Every attribute of a typed item. Never raises."""
    summary = summary_from_item(item)
    attributes = {name: plain(value) for name, value in item.items()}
    malformed = list(summary.malformed)
    body = attributes.get(REQUEST)
    if body is not None and not isinstance(body, str):
        malformed.append(REQUEST)
        body = None
    error = attributes.get(ERROR)
    last_error = attributes.get(LAST_ERROR)
    if last_error is not None and not isinstance(last_error, dict):
        malformed.append(LAST_ERROR)
    result = attributes.get(RESULT)
    if result is not None and not isinstance(result, dict):
        malformed.append(RESULT)
    steps = attributes.get(STEPS)
    if steps is not None and not isinstance(steps, dict | list):
        malformed.append(STEPS)
    if len(malformed) != len(summary.malformed):
        summary = RequestSummary(**{**summary.__dict__, "malformed": tuple(malformed)})
    return RequestDetail(
        summary=summary,
        body=body,
        steps=_steps(steps),
        result={str(k): str(v) for k, v in result.items()} if isinstance(result, dict) else {},
        error=error if isinstance(error, dict) else None,
        last_error=last_error if isinstance(last_error, dict) else None,
        attributes=attributes,
    )


# ---------------------------------------------------------------------------------- expressions
class _Expr:
    """Collects ExpressionAttributeNames/Values so that only the names an expression uses are sent."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        for key, value in self.names.items():
            if value == attribute:
                return key
        self.names[placeholder] = attribute
        return placeholder

    def value(self, typed: dict[str, Any]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = typed
        return placeholder

    def path(self, *parts: str) -> str:
        return ".".join(self.name(part) for part in parts)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = self.names
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out


def _summary_projection(expr: _Expr) -> str:
    """What a list reads: the summary attributes, and of the error only type, message and step (the
    traceback can be kilobytes)."""
    plain_names = [ID, STATUS, CREATED_AT, STARTED_AT, FINISHED_AT, UPDATED_AT, ATTEMPTS, TTL, REDRIVEN_AT]
    paths = [expr.name(n) for n in plain_names]
    paths += [expr.path(ERROR, sub) for sub in (ERROR_TYPE, ERROR_MESSAGE, ERROR_STEP)]
    return ", ".join(paths)


def _status_filter(expr: _Expr, states: frozenset[str]) -> str | None:
    """A FilterExpression for ``states`` (None = every state)."""
    if not states:
        return None
    status = expr.name(STATUS)
    parts = []
    known = sorted(s for s in states if s != UNKNOWN_STATE)
    if known:
        parts.append(f"{status} IN ({', '.join(expr.value({'S': s}) for s in known)})")
    if UNKNOWN_STATE in states:
        every = ", ".join(expr.value({"S": s}) for s in sorted(Status))
        parts.append(f"(attribute_not_exists({status}) OR NOT ({status} IN ({every})))")
    return " OR ".join(parts)


# ------------------------------------------------------------------------------------ shard queries
@dataclass
class _Stream:
    """One newest-first Query of one index partition, read in chunks, with a resumable position."""

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
        expr = _Expr()
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
            params["ProjectionExpression"] = _summary_projection(expr)
        status_filter = _status_filter(expr, self.states)
        if status_filter:
            params["FilterExpression"] = status_filter
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
class _Consumed:
    stream: _Stream
    entry: tuple[RequestSummary, dict[str, Any]]
    previous_mark: dict[str, Any] | None


class _Merger:
    """Newest-first merge of shard queries. ``tiers`` are groups of streams whose items are all newer than
    every item of the next group (one epoch day each for byTime), so later tiers are not read until needed."""

    def __init__(self, store: RequestStore, tiers: list[list[_Stream]], want: int) -> None:
        self.store = store
        self.tiers = tiers
        self.want = want
        self.examined = 0

    def _fetch(self, stream: _Stream, active: int) -> None:
        limit = max(MIN_CHUNK, math.ceil(self.want / max(active, 1)) + 1)
        params = stream.query_params(self.store.table, limit, stream.start)
        answer = self.store._call(self.store.client.query, **params)
        self.examined += int(answer.get("ScannedCount", 0))
        stream.mark = stream.start
        for item in answer.get("Items", []):
            summary = summary_from_item(item)
            created = summary.created_at if summary.created_at is not None else 0
            stream.buffer.append((summary, stream.key_of(created, summary.id)))
        stream.start = answer.get("LastEvaluatedKey")
        stream.done = stream.start is None

    def head(self) -> _Stream | None:
        """The stream whose next item is the newest of all (fetching as needed), or None when exhausted."""
        for tier in self.tiers:
            live = [s for s in tier if s.buffer or not s.done]
            if not live:
                continue
            for stream in live:
                while not stream.buffer and not stream.done:
                    self._fetch(stream, len(live))
            ready = [s for s in live if s.buffer]
            if ready:
                # Ties on createdAt only occur between different states of one shard; any order is fine.
                return max(ready, key=lambda s: s.buffer[0][0].created_at or 0)
        return None

    def take(self) -> _Consumed | None:
        stream = self.head()
        if stream is None:
            return None
        previous = stream.mark
        entry = stream.buffer.popleft()
        stream.mark = entry[1]
        return _Consumed(stream, entry, previous)

    def give_back(self, consumed: Sequence[_Consumed]) -> None:
        """Undo ``take`` for these items, latest first."""
        for record in reversed(consumed):
            record.stream.buffer.appendleft(record.entry)
            record.stream.mark = record.previous_mark


# --------------------------------------------------------------------------------------------- token
def _fingerprint(flt: RequestFilter, plan: str) -> str:
    raw = json.dumps([plan, sorted(flt.states), flt.since_ms, flt.until_ms, flt.text], default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise ValueError("malformed page token") from error
    if not isinstance(payload, dict) or payload.get("v") != TOKEN_VERSION:
        raise ValueError("malformed page token")
    return payload


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------------------------- store
class RequestStore:
    """Reads requests for the dashboard. Thread-safe (boto3 clients are); holds no cache."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.table = settings.table
        self.shards = settings.index_shards
        if client is None:
            config = Config(
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            )
            try:
                client = boto3.client("dynamodb", config=config, **settings.boto3_kwargs())
            except (NoRegionError, BotoCoreError) as error:
                raise StoreUnavailable(f"cannot set up a DynamoDB client: {error}") from error
        self.client = client

    @property
    def endpoint(self) -> str:
        return str(getattr(self.client.meta, "endpoint_url", "") or "DynamoDB")

    # ------------------------------------------------------------------------------- errors
    def _call(self, operation: Callable[..., T], **params: Any) -> T:
        """Run one DynamoDB call; outages, a missing table and credential problems -> StoreUnavailable."""
        try:
            return operation(**params)
        except (
            EndpointConnectionError,
            ConnectTimeoutError,
            ReadTimeoutError,
            ConnectionClosedError,
        ) as error:
            raise StoreUnavailable(f"DynamoDB at {self.endpoint} is unreachable ({error})") from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise StoreUnavailable(
                "no usable AWS credentials: set STREAMDESK_AWS_ACCESS_KEY_ID and "
                "STREAMDESK_AWS_SECRET_ACCESS_KEY, or configure an AWS profile"
            ) from error
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            message = str(error.response.get("Error", {}).get("Message", "")) or code
            if code == "ResourceNotFoundException":
                raise StoreUnavailable(
                    f"table {self.table} does not exist at {self.endpoint} (start the stack: make up)"
                ) from error
            if code in _CREDENTIAL_ERRORS:
                raise StoreUnavailable(f"DynamoDB refused the credentials: {message}") from error
            if code == "ValidationException" and "index" in message.lower():
                # A table made before the indexes existed: `make up` adds them (backend.local.table).
                raise StoreUnavailable(
                    f"table {self.table} lacks the dashboard's indexes ({message}); restart the stack "
                    "(make up) or redeploy to add them"
                ) from error
            if code in _UNAVAILABLE_ERRORS:
                raise StoreUnavailable(f"DynamoDB is overloaded or failing, try again: {message}") from error
            raise

    # ----------------------------------------------------------------------------- helpers
    def _time_streams(
        self, since_ms: int, until_ms: int, states: frozenset[str] = frozenset()
    ) -> list[list[_Stream]]:
        """byTime partitions covering the range, grouped per epoch day, newest day first."""
        tiers = []
        for day in range(until_ms // MS_PER_DAY, since_ms // MS_PER_DAY - 1, -1):
            tiers.append(
                [
                    _Stream(
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

    def _open_streams(
        self, states: Iterable[str], since_ms: int | None, until_ms: int | None = None
    ) -> list[_Stream]:
        chosen = sorted(set(states))
        unknown = set(chosen) - OPEN_STATES
        if unknown:
            raise ValueError(
                f"not open states: {sorted(unknown)} (the open index holds {sorted(OPEN_STATES)})"
            )
        return [
            _Stream(
                INDEX_BY_STATE,
                STATE_BUCKET,
                f"{state}{BUCKET_SEPARATOR}{shard}",
                since_ms,
                until_ms,
                frozenset(),
            )
            for state in chosen
            for shard in range(self.shards)
        ]

    def _read_all(self, stream: _Stream, count_only: bool = False) -> tuple[list[RequestSummary], int, int]:
        """Every item of one stream: (summaries, count, items read)."""
        items: list[RequestSummary] = []
        count = examined = 0
        start: dict[str, Any] | None = None
        while True:
            params = stream.query_params(self.table, None, start, count_only)
            answer = self._call(self.client.query, **params)
            examined += int(answer.get("ScannedCount", 0))
            count += int(answer.get("Count", 0))
            items.extend(summary_from_item(item) for item in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return items, count, examined

    def _read_streams(
        self, streams: Sequence[_Stream], count_only: bool = False
    ) -> tuple[list[RequestSummary], int, int]:
        """Every item of every stream, the queries in parallel (DynamoDB serves partitions concurrently)."""
        if not streams:
            return [], 0, 0
        workers = min(MAX_PARALLEL_QUERIES, len(streams))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="streamdesk-query") as pool:
            results = list(pool.map(lambda s: self._read_all(s, count_only), streams))
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
                expr = _Expr()
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
        until = _now_ms() if until_ms is None else until_ms
        if until < since_ms:
            return [], 0
        streams = [s for tier in self._time_streams(since_ms, until) for s in tier]
        items, _, examined = self._read_streams(streams)
        return items, examined

    def window(self, since_ms: int, until_ms: int | None = None) -> list[RequestSummary]:
        """Every request created in ``[since_ms, until_ms]`` (until: now), newest first, via ``byTime``
        (every shard of every epoch day in the range), never a scan."""
        return self.read_window(since_ms, until_ms)[0]

    def read_open(
        self, states: Iterable[str] = tuple(OPEN_STATES), since_ms: int | None = None
    ) -> tuple[list[RequestSummary], int]:
        """``open_requests`` and the number of items read."""
        items, _, examined = self._read_streams(self._open_streams(states, since_ms))
        return items, examined

    def open_requests(
        self,
        states: Iterable[str] = (Status.PENDING, Status.PROCESSING, Status.FAILED),
        since_ms: int | None = None,
    ) -> list[RequestSummary]:
        """Every request in one of ``states`` (open states only) whatever its age (or created since
        ``since_ms``), newest first, via ``byState``."""
        return self.read_open(states, since_ms)[0]

    def count_open(self, states: Iterable[str] = tuple(OPEN_STATES)) -> tuple[dict[str, int], int]:
        """How many requests are in each open state (Select=COUNT: no attributes travel), and items read."""
        counts: dict[str, int] = {}
        examined = 0
        for state in sorted(set(states)):
            _, count, read = self._read_streams(self._open_streams([state], None), count_only=True)
            counts[state] = count
            examined += read
        return counts, examined

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
        payload = _decode_token(token) if token else None
        plan = "open" if flt.states and flt.states <= OPEN_STATES else "time"
        fingerprint = _fingerprint(flt, plan)
        if payload is not None and payload.get("f") != fingerprint:
            raise ValueError("the page token belongs to another filter")

        if plan == "open":
            since, until = flt.since_ms, flt.until_ms
            tiers = [self._open_streams(flt.states, since, until)]
        else:
            if payload is not None:
                since, until = int(payload["lo"]), int(payload["hi"])
            else:
                until = flt.until_ms if flt.until_ms is not None else _now_ms()
                since = flt.since_ms if flt.since_ms is not None else until - DEFAULT_RANGE_MS
            tiers = self._time_streams(since, until, frozenset(flt.states)) if since <= until else []
        if payload is not None:
            states = payload.get("s", {})
            for tier in tiers:
                for stream in tier:
                    stream.restore(states.get(stream.key_value))

        merger = _Merger(self, tiers, page_size + 1)
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
            next_token = _encode_token(
                {"v": TOKEN_VERSION, "f": fingerprint, "lo": since, "hi": until, "s": state}
            )
        return Page(items=items, next_token=next_token, examined=merger.examined + extra_reads)

    def _fill_with_text(self, merger: _Merger, items: list[RequestSummary], page_size: int, text: str) -> int:
        """Fill ``items`` with candidates matching ``text``, testing them in batches; returns bodies read."""
        reads = 0
        while len(items) < page_size:
            batch: list[_Consumed] = []
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
        expr = _Expr()
        answer = self._call(
            self.client.get_item,
            TableName=self.table,
            Key={ID: {"S": request_id}},
            ConsistentRead=True,
            ProjectionExpression=_summary_projection(expr),
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

        The same requests, in the same order, as paging through ``list_requests`` (newest first), except
        for a filter that narrows nothing (no id, state or range): then the whole table is scanned, in no
        particular order (with the text filter applied to each item)."""
        if flt.request_id:
            detail = self.get(flt.request_id.strip())
            if detail is not None:
                yield detail
            return
        if not flt.states and flt.since_ms is None and flt.until_ms is None:
            yield from self._scan_all(flt.text)
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

    def _scan_all(self, text: str | None) -> Iterator[RequestDetail]:
        needle = text.casefold() if text else None
        start: dict[str, Any] | None = None
        while True:
            params: dict[str, Any] = {"TableName": self.table}
            if start is not None:
                params["ExclusiveStartKey"] = start
            answer = self._call(self.client.scan, **params)
            for item in answer.get("Items", []):
                detail = detail_from_item(item)
                if needle is None or _detail_matches(detail, needle):
                    yield detail
            start = answer.get("LastEvaluatedKey")
            if start is None:
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
        stream = table.get("StreamSpecification") or {}
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
