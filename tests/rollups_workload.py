"""Test helpers for the rollups: the rollups table from the template, a consumer on it, and a mixed
workload run through the real processor whose stream records (read back from DynamoDB Local) feed it."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from streamdesk_processor import item
from streamdesk_processor.item import ResolveReason, Status
from streamdesk_rollups.config import RollupsConfig
from streamdesk_rollups.consumer import RollupsConsumer

from backend.local.table import ensure_table
from backend.roles import Actor, Role
from backend.rollups.reader import RollupReader
from backend.store.actions import Outcome, RequestActions
from backend.template import ROLLUPS_TABLE_ID, LocalValues, Template
from tests.processor_events import (
    FakeClock,
    make_processor,
    put_pending_item,
    read_stream_records,
    sequence_numbers,
    sequence_of,
    stream_event,
)

WRITE_SHARDS = 4


def create_rollups_table(ddb: Any, name: str) -> str:
    """The rollups table as the template defines it (keys, TTL), under ``name``."""
    template = Template.load(local=LocalValues(refs={ROLLUPS_TABLE_ID: name}))
    ensure_table(ddb, name, template, ROLLUPS_TABLE_ID)
    return name


def make_consumer(ddb: Any, table: str, *, clock: Any = None, shards: int = WRITE_SHARDS) -> RollupsConsumer:
    config = RollupsConfig(table_name=table, retention_days=30, write_shards=shards)
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return RollupsConsumer(config, ddb, sleep=lambda _: None, **extra)


def reader(ddb: Any, table: str, shards: int = WRITE_SHARDS) -> RollupReader:
    return RollupReader(ddb, table, shards)


class TickingClock(FakeClock):
    """A clock that moves forward a random few milliseconds at every reading (varied latencies)."""

    def __init__(self, start: float, seed: int) -> None:
        super().__init__(start)
        self._rng = random.Random(seed)

    def __call__(self) -> float:
        self.now += self._rng.lognormvariate(3.5, 1.0) / 1000
        return self.now


@dataclass(frozen=True)
class Workload:
    table: str  # the requests table
    records: list[dict[str, Any]]  # every stream record, in order
    request_ids: list[str]
    since_ms: int
    until_ms: int


def run_workload(
    ddb: Any,
    endpoint: str,
    table: str,
    *,
    requests: int = 60,
    seed: int = 7,
    redrives: int = 3,
    cancels: int = 0,
    resolves: int = 0,
    reopens: int = 0,
) -> Workload:
    """Requests of every kind through the processor (retries re-sent as the trigger would), then some
    failures redriven and processed again; returns the table's whole stream.

    With ``cancels``, that many of the last requests are cancelled before processing; with ``resolves``,
    that many failures (not among the redriven) are resolved, and ``reopens`` of those retried again
    (reopened, redriven, processed: they fail again). All through ``backend.store.actions``."""
    rng = random.Random(seed)
    start = time.time() - 900
    ids = []
    for number in range(requests):
        created = int((start + number) * 1000)
        ids.append(put_pending_item(ddb, table, _body(rng, number), created_at_ms=created))
    actions = RequestActions(ddb, table)
    operator = Actor("tests", Role.OPERATOR)
    for request_id in ids[len(ids) - cancels :] if cancels else ():
        assert actions.cancel(request_id, operator).outcome is Outcome.CANCELLED
    clock = TickingClock(start + requests + 5, seed)
    processor = make_processor(ddb, table, clock=clock, sleep=lambda _: None)
    seen = _process_new(processor, endpoint, table, 0)
    failed = [rid for rid in ids if _status(ddb, table, rid) == Status.FAILED]
    for request_id in failed[:redrives]:
        actions.redrive(request_id, operator)
    resolved = failed[redrives : redrives + resolves]
    for request_id in resolved:
        outcome = actions.resolve(request_id, ResolveReason.DUPLICATE, "", operator).outcome
        assert outcome is Outcome.RESOLVED
    for request_id in resolved[:reopens]:
        assert actions.redrive(request_id, operator).outcome is Outcome.REDRIVEN  # reopened, then redriven
    _process_new(processor, endpoint, table, seen)
    records = read_stream_records(endpoint, table)
    return Workload(table, records, ids, int(start * 1000) - 60_000, int(time.time() * 1000) + 60_000)


def _body(rng: random.Random, number: int) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.15:
        return {"simulate": {"fail": f"card declined for order {number}", "failAtStep": 2}}
    if kind < 0.2:
        return {"simulate": {"fail": f"address {number} unknown", "failAtStep": 1}}
    if kind < 0.35:
        return {"simulate": {"fail": "gateway timeout", "transient": True, "failTimes": 1}}
    if kind < 0.4:
        return {"simulate": {"fail": "upstream down", "transient": True}}  # retries run out: FAILED
    return {"n": number}


def _process_new(processor: Any, endpoint: str, table: str, seen: int) -> int:
    records = read_stream_records(endpoint, table)[seen:]
    pending = records
    for _ in range(10):  # the mapping re-sends failed records (retries are bounded by the processor)
        if not pending:
            break
        failed = set(sequence_numbers(processor.handle(stream_event(*pending))))
        pending = [record for record in pending if sequence_of(record) in failed]
    assert not pending, "the processor still fails records after every retry"
    return seen + len(records)


def _status(ddb: Any, table: str, request_id: str) -> str:
    answer = ddb.get_item(TableName=table, Key={item.ID: {"S": request_id}}, ConsistentRead=True)
    return str(answer["Item"][item.STATUS]["S"])


def scan_items(ddb: Any, table: str) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        images += page["Items"]
        if "LastEvaluatedKey" not in page:
            return images
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def count_stream(ddb: Any, endpoint: str, requests_table: str, rollups_table: str) -> int:
    """Run the real rollups consumer over every record of ``requests_table``'s stream so far (as the
    rollups mapping would, in batches of 100); returns the records delivered. Records already counted are
    skipped by the consumer's ledger, so calling it again after more writes counts only the new ones."""
    records = read_stream_records(endpoint, requests_table)
    consumer = make_consumer(ddb, rollups_table)
    for start in range(0, len(records), 100):
        answer, _ = consumer.handle(stream_event(*records[start : start + 100]))
        assert answer == {"batchItemFailures": []}, answer
    return len(records)
