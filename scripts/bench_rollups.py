"""Benchmark: what exactly-once rollups cost the consumer, against a naive counter in the same run.

    python scripts/bench_rollups.py [--requests 300] [--batch 100]

Starts its own in-memory DynamoDB Local, runs a mixed workload through the real processor (tests'
``run_workload``: successes, permanent and transient failures, redrives), then applies the table's whole
stream three ways and counts DynamoDB item writes and reads (counts do not drift; times are printed too):
- naive: one plain UpdateItem ADD per touched bucket item and record, no ledger (double counts on any
  redelivery): the baseline;
- rollups: the consumer (ledger, one transaction per chunk; a transactional item write costs 2 units);
- redelivery: the same stream again through the consumer (everything a duplicate).
And the read side: the rollups of the workload's range against reading its items. No assertions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.*, when run as a script

from streamdesk_rollups.deltas import chunk
from streamdesk_rollups.transitions import change_of

from backend.local.dynamodb_local import DynamoDBLocal, client
from backend.local.table import ensure_table
from backend.template import TABLE_ID, LocalValues, Template
from tests.rollups_workload import create_rollups_table, make_consumer, reader, run_workload, scan_items


class CountingClient:
    """The client, counting item writes (transactional ones apart) and item reads."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.writes = self.transactional_writes = self.reads = self.calls = 0

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls += 1
        self.transactional_writes += len(kwargs["TransactItems"])
        return self._real.transact_write_items(**kwargs)

    def update_item(self, **kwargs: Any) -> Any:
        self.calls += 1
        self.writes += 1
        return self._real.update_item(**kwargs)

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.calls += 1
        self.reads += sum(len(spec["Keys"]) for spec in kwargs["RequestItems"].values())
        return self._real.batch_get_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    @property
    def write_units(self) -> int:
        return self.writes + 2 * self.transactional_writes


def naive(counting: CountingClient, table: str, records: list[dict[str, Any]]) -> None:
    """The same counters, one UpdateItem per record and bucket item: cheap and wrong on redelivery."""
    from streamdesk_rollups.schema import PK, SK, rollup_pk

    for record in records:
        change = change_of(record)
        if change.empty:
            continue
        (part,) = chunk([change])
        for (grain, start), delta in part.buckets.items():
            names = {f"#a{n}": attribute for n, attribute in enumerate(delta.counters)}
            values = {f":a{n}": {"N": str(amount)} for n, amount in enumerate(delta.counters.values())}
            counting.update_item(
                TableName=table,
                Key={PK: {"S": rollup_pk(grain, start, 0)}, SK: {"N": str(start)}},
                UpdateExpression="ADD " + ", ".join(f"#a{n} :a{n}" for n in range(len(names))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )


def timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    local = DynamoDBLocal.start()
    try:
        ddb = client(local.endpoint)
        requests = "bench-requests"
        ensure_table(ddb, requests, Template.load(local=LocalValues(refs={TABLE_ID: requests})))
        workload = run_workload(ddb, local.endpoint, requests, requests=args.requests, redrives=10)
        records = workload.records
        batches = [records[i : i + args.batch] for i in range(0, len(records), args.batch)]
        print(f"{args.requests} requests, {len(records)} stream records, batches of {args.batch}")

        baseline = CountingClient(ddb)
        naive_ms = timed(lambda: naive(baseline, create_rollups_table(ddb, "bench-naive"), records))
        rollups = CountingClient(ddb)
        consumer = make_consumer(rollups, create_rollups_table(ddb, "bench-rollups"))
        rollups_ms = timed(lambda: [consumer.handle({"Records": batch}) for batch in batches])
        again = CountingClient(ddb)
        replay = make_consumer(again, "bench-rollups")
        again_ms = timed(lambda: [replay.handle({"Records": batch}) for batch in batches])

        n = args.requests
        print(f"{'':<12}{'write units/request':>20}{'reads/request':>15}{'calls':>8}{'ms':>9}")
        for name, counts, ms in (("naive", baseline, naive_ms), ("rollups", rollups, rollups_ms),
                                 ("redelivery", again, again_ms)):  # fmt: skip
            per_request = f"{counts.write_units / n:>20.2f}{counts.reads / n:>15.2f}"
            print(f"{name:<12}{per_request}{counts.calls:>8}{ms:>9.0f}")
        print(f"rollups / naive: write units x{rollups.write_units / baseline.write_units:.2f}, "
              f"time x{rollups_ms / naive_ms:.2f}")  # fmt: skip

        range_reader = reader(ddb, "bench-rollups")
        read_ms = timed(lambda: range_reader.total(workload.since_ms, workload.until_ms))
        items_ms = timed(lambda: scan_items(ddb, requests))
        print(f"read the range: rollups {range_reader.items_read} items in {read_ms:.0f} ms, "
              f"the requests {len(workload.request_ids)} items in {items_ms:.0f} ms")  # fmt: skip
    finally:
        local.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
