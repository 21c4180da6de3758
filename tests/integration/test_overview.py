"""load_overview against DynamoDB Local: the range's figures from the rollups the real consumer keeps, the
right-now figures from bounded index queries, and what each reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from streamdesk_processor import item
from streamdesk_processor.item import MS_PER_DAY, Status
from streamdesk_rollups.schema import Grain, Stage, Transition

from backend.computed.overview import MINUTE_GRAIN_MAX_MS, load_overview
from backend.rollups.model import Rollup
from backend.rollups.rebuild import recount
from backend.settings import Settings
from backend.store.reader import RequestStore
from tests.rollups_workload import count_stream, create_rollups_table, run_workload, scan_items
from tests.seed import make_item, seed_every_state, write_items

HOUR = 3_600_000
MINUTE = 60_000


@pytest.fixture(autouse=True)
def rollups_table(ddb: Any, settings: Settings) -> Iterator[str]:
    """The test's rollups table, deleted after it (DynamoDB Local's TTL sweeper reads every table left)."""
    yield create_rollups_table(ddb, settings.rollups_table)
    ddb.delete_table(TableName=settings.rollups_table)


def test_the_overview_equals_a_recount_of_a_mixed_run(
    ddb: Any, dynamodb_endpoint: str, settings: Settings
) -> None:
    # Successes, lasting and transient failures, automatic retries, through the real processor.
    workload = run_workload(ddb, dynamodb_endpoint, settings.table, requests=40, redrives=0)
    count_stream(ddb, dynamodb_endpoint, settings.table, settings.rollups_table)
    now = int(time.time() * 1000)
    overview = load_overview(RequestStore(settings), settings, workload.since_ms, now, now)

    items = scan_items(ddb, settings.table)
    status = [i[item.STATUS]["S"] for i in items]
    attempts = sum(int(i[item.ATTEMPTS]["N"]) for i in items)
    assert status.count(Status.FAILED) > 0 and attempts > len(items)  # the run did what it promised
    assert overview.grain is Grain.MINUTE  # a run of a quarter of an hour
    assert overview.counts[Transition.ACCEPTED] == len(items)
    assert overview.counts[Transition.STARTED] == attempts
    assert overview.counts[Transition.SUCCEEDED] == status.count(Status.SUCCEEDED)
    assert overview.counts[Transition.FAILED] == status.count(Status.FAILED)
    assert overview.counts[Transition.RETRIED] == attempts - len(items)  # every start but the first
    assert overview.counts[Transition.REDRIVEN] == overview.counts[Transition.EXPIRED] == 0
    assert overview.open_failures == status.count(Status.FAILED)
    assert (overview.live.pending, overview.live.processing, overview.live.stuck) == (0, 0, 0)
    assert overview.throughput["accepted"].sum() == len(items)
    assert overview.throughput["succeeded"].sum() == status.count(Status.SUCCEEDED)
    assert overview.throughput["failed"].sum() == status.count(Status.FAILED)

    # Latencies: the recount's sketch of the items' (latest) attempts, which is every attempt that
    # finished (a retried attempt hands back without finishing); p50/p95/p99 of the same bins.
    expected = Rollup()
    for bucket in recount(items, overview.covered_since_ms, now, Grain.MINUTE).values():
        expected.merge(bucket)
    table = overview.percentiles.set_index("stage")
    for stage, name in ((Stage.QUEUE_WAIT, "queue wait"), (Stage.PROCESSING, "processing")):
        sketch = expected.sketches[stage]
        assert table.loc[name, "count"] == sketch.count == len(items)
        for column, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            assert table.loc[name, column] == sketch.quantile(q)
    distribution = overview.distribution
    assert distribution.groupby("stage")["count"].sum().to_dict() == {
        "queue wait": len(items),
        "processing": len(items),
        "end to end": len(items),
    }


def test_thirty_days_read_hour_buckets(ddb: Any, dynamodb_endpoint: str, settings: Settings) -> None:
    now = int(time.time() * 1000)
    seed_every_state(ddb, settings.table, now)
    count_stream(ddb, dynamodb_endpoint, settings.table, settings.rollups_table)
    store = RequestStore(settings)

    hour = load_overview(store, settings, now - HOUR, now, now)
    month = load_overview(store, settings, now - 30 * MS_PER_DAY, now, now)
    assert hour.grain is Grain.MINUTE and month.grain is Grain.HOUR
    assert month.covered_since_ms % HOUR == 0 and month.bucket_ms >= HOUR
    assert month.counts == hour.counts  # everything happened in the last hour
    # The hour buckets of the month hold the seed's last hour: 2 hours at most (the seed spans 55 minutes).
    assert 1 <= month.buckets_read <= 2
    assert len(month.throughput) <= 31  # one bar per day
    # The grain's boundary: 6 hours still read minutes.
    assert load_overview(store, settings, now - MINUTE_GRAIN_MAX_MS, now, now).grain is Grain.MINUTE
    longer = load_overview(store, settings, now - 40 * MS_PER_DAY, now, now)
    assert longer.cut and longer.since_ms == now - 30 * MS_PER_DAY


def _pending(n: int, created: int, **extra: Any) -> dict[str, Any]:
    return make_item(id=f"pending-{created}-{n}", status=Status.PENDING, created_at=created, **extra)


def test_the_right_now_figures_read_a_bounded_number_of_items(ddb: Any, settings: Settings) -> None:
    now = int(time.time() * 1000)
    store = RequestStore(settings)
    stuck_after = settings.stuck_after_ms
    old = [
        _pending(0, now - 50 * MINUTE),  # stuck, the oldest wait
        # Created 2 hours ago but redriven 10 s ago: neither stuck nor the oldest wait.
        _pending(1, now - 2 * HOUR, redriven_at=now - 10_000),
        make_item(
            id="processing-old",
            status=Status.PROCESSING,
            created_at=now - 40 * MINUTE,
            started_at=now - 39 * MINUTE,
            attempts=1,
        ),  # stuck
        make_item(
            id="processing-retried",
            status=Status.PROCESSING,
            created_at=now - 30 * MINUTE,
            started_at=now - 20_000,
            attempts=3,
        ),  # not stuck: its current attempt started 20 s ago
    ]
    write_items(ddb, settings.table, [*old, *(_pending(n, now - 1_000 - n) for n in range(10))])
    few = store.live_state(now, stuck_after)
    assert (few.pending, few.processing, few.stuck) == (12, 2, 2)
    assert few.oldest_pending_age_ms == 50 * MINUTE

    write_items(ddb, settings.table, [_pending(n, now - 20_000 - n) for n in range(10, 610)])
    many = store.live_state(now, stuck_after)
    assert (many.pending, many.processing, many.stuck) == (612, 2, 2)
    assert many.oldest_pending_age_ms == 50 * MINUTE
    # 600 more pending requests: not one more item read (they are counted, Select=COUNT, never returned).
    assert many.items_read == few.items_read <= 4 * 5  # a few per shard for the oldest wait
    assert many.items_counted > few.items_counted
    overview = load_overview(store, settings, now - HOUR, now, now)
    assert overview.live == many
    # Rollups (the gauge's items, and none of the empty range) plus the index items: still a handful.
    assert overview.examined == many.items_read
