"""Benchmark: the overview's cost grows with what it shows, not with the table.

    python scripts/bench_overview.py [--sizes 10000 100000] [--repeat 5]

Starts its own in-memory DynamoDB Local, creates the table from infra/template.yaml, seeds N requests spread
over 7 days (so the last hour holds about 1/168 of them, 5 % failed), then times in the same run:
- the overview of the last hour (``load_overview``),
- the failures list (``RequestStore.open_requests([FAILED])``),
- a raw paginated Scan of the whole table: the naive approach, the baseline.
Prints the median of ``--repeat`` runs (after one warm-up) and the items each read. No assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.seed, when run as a script

from streamdesk_processor.item import MS_PER_DAY, Status

from backend.computed.overview import load_overview
from backend.local.dynamodb_local import DynamoDBLocal, client
from backend.local.table import ensure_table
from backend.settings import load_settings
from backend.store.reader import RequestStore
from backend.template import LocalValues, Template
from tests.seed import seed_bulk

HOUR = 3_600_000


def median_ms(action: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Median wall time of ``action`` in ms over ``repeat`` runs after a warm-up, and what it read."""
    read = action()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        read = action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), read


def scan_everything(ddb: Any, table: str) -> int:
    """The naive way: read the whole table, page by page. Returns the items read."""
    read = 0
    start: dict[str, Any] | None = None
    while True:
        params: dict[str, Any] = {"TableName": table}
        if start:
            params["ExclusiveStartKey"] = start
        answer = ddb.scan(**params)
        read += int(answer["ScannedCount"])
        start = answer.get("LastEvaluatedKey")
        if not start:
            return read


def bench_size(local: DynamoDBLocal, size: int, repeat: int, data_dir: Path) -> None:
    table = f"bench-{size}"
    ddb = client(local.endpoint, timeout=60.0)
    ensure_table(ddb, table, Template.load(local=LocalValues(refs={"RequestsTable": table})))
    settings = load_settings(dynamodb_port=local.port, table=table, data_dir=data_dir)
    now = int(time.time() * 1000)

    started = time.perf_counter()
    seed_bulk(ddb, table, size, now - 7 * MS_PER_DAY, now, shards=settings.index_shards)
    print(f"\n{size:,} requests over 7 days (seeded in {time.perf_counter() - started:.1f} s)", flush=True)

    store = RequestStore(settings)

    def overview() -> int:
        return load_overview(store, settings, now - HOUR, now, now).examined

    def failures() -> int:
        return store.read_open([Status.FAILED])[1]

    overview_ms, overview_read = median_ms(overview, repeat)
    failures_ms, failures_read = median_ms(failures, repeat)
    scan_ms, scan_read = median_ms(lambda: scan_everything(ddb, table), repeat)
    shown = load_overview(store, settings, now - HOUR, now, now)
    counts = shown.counts
    in_hour = counts.pending + counts.processing + counts.succeeded + counts.failed
    in_hour += counts.expired + counts.unknown
    print(
        f"  requests in the last hour: {in_hour:,}; failed awaiting a person (any age): {shown.live.failed:,}"
    )
    print(f"  {'what':<28}{'median ms':>12}{'items read':>14}{'ms vs scan':>12}")
    for name, ms, read in (
        ("overview, last hour", overview_ms, overview_read),
        ("failures list", failures_ms, failures_read),
        ("scan of the whole table", scan_ms, scan_read),
    ):
        print(f"  {name:<28}{ms:>12.1f}{read:>14,}{ms / scan_ms:>12.3f}")
    ddb.delete_table(TableName=table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000], help="table sizes to measure")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median)")
    args = parser.parse_args(argv)
    local = DynamoDBLocal.start()
    try:
        with tempfile.TemporaryDirectory(prefix="streamdesk-bench-") as data_dir:
            print(f"DynamoDB Local (in memory) at {local.endpoint}; median of {args.repeat} runs")
            for size in args.sizes:
                bench_size(local, size, args.repeat, Path(data_dir))
    finally:
        local.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
