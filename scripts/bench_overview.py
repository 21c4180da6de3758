"""Benchmark: the overview costs the same at 1 request a second and at 1,000.

    python scripts/bench_overview.py [--rate 1000] [--days 7] [--items 100000] [--small 10000] [--repeat 3]

Starts its own in-memory DynamoDB Local and builds two stacks (requests table + rollups table, from
infra/template.yaml):

- big: ``--days`` of rollups at ``--rate`` requests a second (7 days at 1,000/s is about 600 million
  requests; rollup items written directly, minute and hour grain, every write shard, sketches with the
  bins that many requests use, 300 failure groups; see scripts/synthetic_rollups.py) and ``--items``
  real request items over the same days (the right-now figures and the baseline read those);
- small: ``--small`` requests in rollups and as real items over the same days.

For the ranges 15 minutes, 1 day and 7 days it times, in the same run, the overview (``load_overview``:
rollups + bounded index queries) against the raw baseline, the overview as it was before the rollups
(every item created in the range from ``byTime``, the open ones from ``byState``, counted in Python).
Prints the median of ``--repeat`` runs (after one warm-up), the items each read, and the ratios. No
assertions: docs/performance.md records the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.seed, when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent))  # synthetic_rollups

import boto3
import synthetic_rollups
from botocore.config import Config
from streamdesk_processor.item import MS_PER_DAY, Status

from backend.computed.overview import load_overview
from backend.computed.stats import (
    choose_bucket_ms,
    count_states,
    latency_frame,
    latency_percentiles,
    throughput_frame,
)
from backend.local.dynamodb_local import DynamoDBLocal
from backend.local.table import ensure_table
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY, Settings, load_settings
from backend.store.reader import RequestStore
from backend.template import ROLLUPS_TABLE_ID, LocalValues, Template
from tests.seed import seed_bulk

MINUTE = 60_000
RANGES: dict[str, int] = {"15 minutes": 15 * MINUTE, "1 day": MS_PER_DAY, "7 days": 7 * MS_PER_DAY}


def bulk_client(endpoint: str) -> Any:
    """A client for seeding: long timeouts, a connection per thread."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
        config=Config(max_pool_connections=32, read_timeout=300, retries={"max_attempts": 10}),
    )


def median_ms(action: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Median wall time of ``action`` in ms over ``repeat`` runs after a warm-up, and what it read."""
    read = action()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        read = action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), read


def items_overview(store: RequestStore, settings: Settings, since: int, until: int, now: int) -> int:
    """The baseline: the overview as it was before the rollups (what it read and computed); items read."""
    in_range, read_range = store.read_window(since, until)
    running, read_running = store.read_open((Status.PENDING, Status.PROCESSING))
    _, read_failed = store.count_open((Status.FAILED,))
    count_states(running, now, settings.expiring_horizon_ms, settings.stuck_after_ms)
    count_states(in_range, now, settings.expiring_horizon_ms, settings.stuck_after_ms)
    throughput_frame(in_range, since, until, choose_bucket_ms(since, until))
    latency_percentiles(latency_frame(in_range))
    return read_range + read_running + read_failed


@dataclass(frozen=True)
class Stack:
    name: str
    settings: Settings
    rollup_requests: int  # how many requests the rollups count


def build_stack(
    local: DynamoDBLocal, name: str, items: int, now: int, days: int, *, rate: float | None, data_dir: Path
) -> Stack:
    """A requests table with ``items`` real items over ``days`` and its rollups: ``rate`` requests a
    second (dense), or the same number as the items (sparse) when ``rate`` is None."""
    ddb = bulk_client(local.endpoint)
    settings = load_settings(dynamodb_port=local.port, table=f"bench-{name}", data_dir=data_dir)
    template = Template.load(local=LocalValues(refs={"RequestsTable": settings.table}))
    ensure_table(ddb, settings.table, template)
    # Nothing here reads the stream, and DynamoDB Local's bookkeeping of the stream records of 100,000
    # writes makes every later DescribeTable (a table's creation waits on it) take minutes.
    ddb.update_table(TableName=settings.table, StreamSpecification={"StreamEnabled": False})
    rollups_template = Template.load(local=LocalValues(refs={ROLLUPS_TABLE_ID: settings.rollups_table}))
    ensure_table(ddb, settings.rollups_table, rollups_template, ROLLUPS_TABLE_ID)
    since = now - days * MS_PER_DAY
    started = time.perf_counter()
    seed_bulk(ddb, settings.table, items, since, now, shards=settings.index_shards)
    seeded_items = time.perf_counter() - started
    groups = synthetic_rollups.group_keys(300)
    shards = settings.rollups_shards
    # An hour more than the range: the expiring figure reads the hours where the 7-day retention ends.
    if rate is None:
        generated = synthetic_rollups.sparse_rollups(since - 3_600_000, now, items, shards, groups)
        counted = items
    else:
        generated = synthetic_rollups.dense_rollups(since - 3_600_000, now, rate, shards, groups)
        counted = round(rate * (now - since + 3_600_000) / 1000)
    started = time.perf_counter()
    written = synthetic_rollups.write(ddb, settings.rollups_table, generated)
    synthetic_rollups.write_groups_and_gauge(
        ddb, settings.rollups_table, groups, shards, open_failures=round(items * 0.05), now_s=now // 1000
    )
    print(
        f"\n{name}: {items:,} request items (seeded in {seeded_items:.0f} s); rollups of {counted:,} "
        f"requests: {written:,} rollup items (written in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    return Stack(name, settings, counted)


def measure(stack: Stack, now: int, repeat: int) -> dict[str, dict[str, tuple[float, int]]]:
    store = RequestStore(stack.settings)
    results: dict[str, dict[str, tuple[float, int]]] = {}
    print(f"  {'range':<12}{'overview ms':>13}{'items read':>12}{'baseline ms':>13}{'items read':>12}"
          f"{'time x':>9}{'items x':>9}")  # fmt: skip
    for label, span in RANGES.items():
        since = now - span

        def rollups(since: int = since) -> int:
            return load_overview(store, stack.settings, since, now, now).examined

        def baseline(since: int = since) -> int:
            return items_overview(store, stack.settings, since, now, now)

        new = median_ms(rollups, repeat)
        old = median_ms(baseline, repeat)
        results[label] = {"overview": new, "baseline": old}
        print(
            f"  {label:<12}{new[0]:>13.1f}{new[1]:>12,}{old[0]:>13.1f}{old[1]:>12,}"
            f"{new[0] / old[0]:>9.2f}{new[1] / max(old[1], 1):>9.2f}",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="requests a second in the big rollups")
    parser.add_argument("--days", type=int, default=7, help="days of traffic")
    parser.add_argument("--items", type=int, default=100_000, help="real request items of the big stack")
    parser.add_argument("--small", type=int, default=10_000, help="requests of the small stack")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/streamdesk-bench-overview"))
    args = parser.parse_args(argv)
    local = DynamoDBLocal.start()
    now = int(time.time() * 1000)
    try:
        print(f"DynamoDB Local (in memory) at {local.endpoint}; median of {args.repeat} runs")
        big = build_stack(local, "big", args.items, now, args.days, rate=args.rate, data_dir=args.data_dir)
        small = build_stack(local, "small", args.small, now, args.days, rate=None, data_dir=args.data_dir)
        measured = {}
        for stack in (big, small):
            print(f"\n{stack.name}: {stack.rollup_requests:,} requests, the overview vs the baseline")
            measured[stack.name] = measure(stack, now, args.repeat)
        print(f"\nbig ({big.rollup_requests:,} requests) vs small ({small.rollup_requests:,}), the overview:")
        print(f"  {'range':<12}{'time x':>9}{'items x':>9}")
        for label in RANGES:
            (big_ms, big_read), (small_ms, small_read) = (
                measured["big"][label]["overview"],
                measured["small"][label]["overview"],
            )
            print(f"  {label:<12}{big_ms / small_ms:>9.2f}{big_read / max(small_read, 1):>9.2f}")
    finally:
        local.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
