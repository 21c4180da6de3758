"""Test and benchmark helper: write request items exactly as the API and the processor would.

Index attributes follow docs/internal-contracts.md: ``timeBucket = "<createdAt // day>:<shard>"`` and
``stateBucket = "<status>:<shard>"``, with ``shard = createdAt % shards``.

``seed_every_state`` writes this exact set (counts the UI tests can assert; "now" is the ``now_ms`` given,
every request is created within the 55 minutes before it, and with the default settings, expiring horizon
24 h and stuck after 300 s):

| key               | n | status     | what                                                             |
|-------------------|---|------------|------------------------------------------------------------------|
| pending           | 3 | PENDING    | created 10, 20, 30 s ago                                         |
| processing        | 2 | PROCESSING | started 5 s ago                                                  |
| succeeded         | 4 | SUCCEEDED  | ttl in 7 days                                                    |
| failed            | 3 | FAILED     | error with traceback: "card declined" (step charge), "gateway    |
|                   |   |            | timeout" (transient, step reserve), "insufficient stock"          |
| expiring          | 2 | SUCCEEDED  | ttl in 1 hour                                                    |
| expired           | 2 | SUCCEEDED  | ttl 10 minutes ago (not yet deleted)                             |
| stuck_pending     | 1 | PENDING    | created 50 minutes ago                                           |
| stuck_processing  | 1 | PROCESSING | started 45 minutes ago                                           |
| malformed         | 3 | odd        | no status; status "WEIRD" with attempts "three" (a string) and   |
|                   |   |            | error a string; createdAt missing (so in no index)               |
| html              | 1 | FAILED     | body and error message contain <script>alert(1)</script>         |

So by status: PENDING 4, PROCESSING 3, SUCCEEDED 8 (2 of them expired, 2 expiring), FAILED 4 (failed + html),
unknown 3; 22 items, 21 in ``byTime`` (the one without createdAt is only reachable by id or scan). Every body
holds a distinct word: ``"customer": "<key>-<n>"`` (e.g. "failed-2"), searchable; failure messages are
searchable too. The expired ones carry no stateBucket, so that DynamoDB Local's TTL leaves them alone (see
below), as AWS would for hours.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from streamdesk_processor.item import (
    ATTEMPTS,
    BUCKET_SEPARATOR,
    CREATED_AT,
    ERROR,
    ERROR_MESSAGE,
    ERROR_STEP,
    ERROR_TRACEBACK,
    ERROR_TRANSIENT,
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

_serializer = TypeSerializer()
HTML = "<script>alert(1)</script>"
RETENTION_S = 7 * 86_400


def typed(value: Any) -> dict[str, Any]:
    """A plain Python value as a DynamoDB typed value (ints and bools as DynamoDB expects)."""
    return dict(_serializer.serialize(value))


def traceback_for(message: str, step: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/var/task/streamdesk_processor/steps.py", line 42, in run\n'
        f"    {step}(request)\n"
        f"BusinessError: {message}"
    )


def error_map(
    message: str, step: str = "charge", kind: str = "BusinessError", transient: bool = False
) -> dict:
    return {
        ERROR_TYPE: kind,
        ERROR_MESSAGE: message,
        ERROR_STEP: step,
        ERROR_TRACEBACK: traceback_for(message, step),
        ERROR_TRANSIENT: transient,
    }


def make_item(
    *,
    id: str,
    status: str,
    created_at: int,
    started_at: int | None = None,
    finished_at: int | None = None,
    attempts: int = 0,
    ttl: int | None = None,
    error: dict[str, Any] | None = None,
    steps: dict[str, dict[str, Any]] | None = None,
    result: dict[str, str] | None = None,
    body: str | None = '{"order": 1}',
    shards: int = 4,
    redriven_at: int | None = None,
    last_error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One item, DynamoDB typed, as the API wrote it and the processor updated it."""
    shard = created_at % shards
    item: dict[str, Any] = {
        ID: {"S": id},
        STATUS: {"S": status},
        CREATED_AT: {"N": str(created_at)},
        UPDATED_AT: {"N": str(max(t for t in (created_at, started_at, finished_at, redriven_at) if t))},
        ATTEMPTS: {"N": str(attempts)},
        TIME_BUCKET: {"S": f"{created_at // MS_PER_DAY}{BUCKET_SEPARATOR}{shard}"},
    }
    if body is not None:
        item[REQUEST] = {"S": body}
    item[STATE_BUCKET] = {"S": f"{status}{BUCKET_SEPARATOR}{shard}"}
    optional: dict[str, Any] = {
        STARTED_AT: started_at,
        FINISHED_AT: finished_at,
        TTL: ttl,
        ERROR: error,
        STEPS: steps,
        RESULT: result,
        REDRIVEN_AT: redriven_at,
        LAST_ERROR: last_error,
    }
    for name, value in optional.items():
        if value is not None:
            item[name] = typed(value)
    return item


def _steps(at: int, attempt: int = 1, names: Sequence[str] = ("validate", "reserve", "charge")) -> dict:
    return {name: {"at": at + 10 * i, "attempt": attempt} for i, name in enumerate(names)}


def write_items(client: Any, table_name: str, items: Sequence[dict[str, Any]], threads: int = 4) -> None:
    """BatchWriteItem in chunks of 25, a few threads, retrying unprocessed items."""
    chunks = [items[i : i + 25] for i in range(0, len(items), 25)]

    def write(chunk: Sequence[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {table_name: [{"PutRequest": {"Item": item}} for item in chunk]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(write, chunks))


def _body(key: str, n: int, extra: str = "") -> str:
    return json.dumps({"order": n, "customer": f"{key}-{n}", "note": extra})


def seed_every_state(client: Any, table_name: str, now_ms: int, shards: int = 4) -> dict[str, list[str]]:
    """Write the set documented in the module docstring; returns the ids per key."""
    now_s = now_ms // 1000
    ids: dict[str, list[str]] = {}
    items: list[dict[str, Any]] = []
    minute = 60_000

    def add(key: str, item: dict[str, Any]) -> None:
        ids.setdefault(key, []).append(item[ID]["S"])
        items.append(item)

    def finished(key: str, n: int, created: int, ttl: int) -> dict[str, Any]:
        return make_item(
            id=f"{key}-{n}",
            status=Status.SUCCEEDED,
            created_at=created,
            started_at=created + 300,
            finished_at=created + 900,
            attempts=1,
            ttl=ttl,
            steps=_steps(created + 300),
            result={"receipt": f"r-{key}-{n}"},
            body=_body(key, n),
            shards=shards,
        )

    for n in range(3):
        created = now_ms - (n + 1) * 10_000
        add(
            "pending",
            make_item(
                id=f"pending-{n}",
                status=Status.PENDING,
                created_at=created,
                body=_body("pending", n),
                shards=shards,
            ),
        )
    for n in range(2):
        created = now_ms - 8_000 - n
        add(
            "processing",
            make_item(
                id=f"processing-{n}",
                status=Status.PROCESSING,
                created_at=created,
                started_at=now_ms - 5_000,
                attempts=1,
                body=_body("processing", n),
                shards=shards,
            ),
        )
    for n in range(4):
        created = now_ms - (10 + n) * minute
        add("succeeded", finished("succeeded", n, created, now_s + RETENTION_S))
    failures = [
        error_map("card declined", "charge"),
        error_map("gateway timeout", "reserve", "TimeoutError", transient=True),
        error_map("insufficient stock", "reserve"),
    ]
    for n, error in enumerate(failures):
        created = now_ms - (20 + n) * minute
        add(
            "failed",
            make_item(
                id=f"failed-{n}",
                status=Status.FAILED,
                created_at=created,
                started_at=created + 200,
                finished_at=created + 700,
                attempts=4 if error[ERROR_TRANSIENT] else 1,
                error=error,
                steps=_steps(created + 200, names=("validate",)),
                body=_body("failed", n),
                shards=shards,
            ),
        )
    for n in range(2):
        created = now_ms - (30 + n) * minute
        add("expiring", finished("expiring", n, created, now_s + 3600))
    for n in range(2):
        created = now_ms - (40 + n) * minute
        expired = finished("expired", n, created, now_s - 600)
        # On AWS an expired item lingers for up to a few days; DynamoDB Local deletes one within seconds,
        # except an item that lacks an index key: leaving out stateBucket (no query reads the SUCCEEDED
        # partitions) keeps these two "expired but not yet deleted" for as long as a test needs them.
        del expired[STATE_BUCKET]
        add("expired", expired)
    add(
        "stuck_pending",
        make_item(
            id="stuck_pending-0",
            status=Status.PENDING,
            created_at=now_ms - 50 * minute,
            body=_body("stuck_pending", 0),
            shards=shards,
        ),
    )
    created = now_ms - 46 * minute
    add(
        "stuck_processing",
        make_item(
            id="stuck_processing-0",
            status=Status.PROCESSING,
            created_at=created,
            started_at=now_ms - 45 * minute,
            attempts=1,
            body=_body("stuck_processing", 0),
            shards=shards,
        ),
    )

    # Malformed: what a hand edit, an old version or a bug could leave behind.
    no_status = make_item(
        id="malformed-0",
        status="",
        created_at=now_ms - 52 * minute,
        body=_body("malformed", 0),
        shards=shards,
    )
    del no_status[STATUS]
    del no_status[STATE_BUCKET]
    add("malformed", no_status)
    weird = make_item(
        id="malformed-1",
        status="WEIRD",
        created_at=now_ms - 53 * minute,
        body=_body("malformed", 1),
        shards=shards,
    )
    weird[ATTEMPTS] = {"S": "three"}
    weird[ERROR] = {"S": "something broke"}
    del weird[STATE_BUCKET]
    add("malformed", weird)
    no_created = make_item(
        id="malformed-2",
        status=Status.PENDING,
        created_at=now_ms - 54 * minute,
        body=_body("malformed", 2),
        shards=shards,
    )
    for name in (CREATED_AT, TIME_BUCKET, STATE_BUCKET):
        del no_created[name]
    add("malformed", no_created)

    created = now_ms - 55 * minute
    add(
        "html",
        make_item(
            id="html-0",
            status=Status.FAILED,
            created_at=created,
            started_at=created + 100,
            finished_at=created + 300,
            attempts=1,
            error=error_map(f"bad input {HTML}", "validate", "ValidationError"),
            body=json.dumps({"order": 0, "customer": "html-0", "note": HTML}),
            shards=shards,
        ),
    )
    write_items(client, table_name, items)
    return ids


def seed_bulk(
    client: Any,
    table_name: str,
    count: int,
    since_ms: int,
    until_ms: int,
    shards: int = 4,
    failure_ratio: float = 0.05,
    seed: int = 7,
) -> None:
    """``count`` requests created uniformly over ``[since_ms, until_ms]`` (deterministic for a seed):
    ``failure_ratio`` of them FAILED, those of the last minute still PENDING or PROCESSING, the rest
    SUCCEEDED with a 7-day TTL. Ids are ``bulk-<n>``."""
    rng = random.Random(seed)
    items = []
    for n in range(count):
        created = rng.randint(since_ms, until_ms)
        started = created + int(rng.lognormvariate(5.5, 0.5))  # ~250 ms queue wait
        done = started + int(rng.lognormvariate(4.5, 0.6))  # ~90 ms of work
        body = json.dumps({"order": n, "customer": f"c{n % 1000}"})
        if until_ms - created < 60_000:
            status = Status.PENDING if n % 2 else Status.PROCESSING
            item = make_item(
                id=f"bulk-{n}",
                status=status,
                created_at=created,
                body=body,
                shards=shards,
                started_at=started if status == Status.PROCESSING else None,
                attempts=int(status == Status.PROCESSING),
            )
        elif rng.random() < failure_ratio:
            item = make_item(
                id=f"bulk-{n}",
                status=Status.FAILED,
                created_at=created,
                started_at=started,
                finished_at=done,
                attempts=1,
                error=error_map("card declined"),
                body=body,
                shards=shards,
            )
        else:
            item = make_item(
                id=f"bulk-{n}",
                status=Status.SUCCEEDED,
                created_at=created,
                started_at=started,
                finished_at=done,
                attempts=1,
                ttl=done // 1000 + RETENTION_S,
                result={"receipt": f"r{n}"},
                body=body,
                shards=shards,
            )
        items.append(item)
    write_items(client, table_name, items)
