"""load_overview against DynamoDB Local: the numbers of a known table, and what it reads."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from streamdesk_processor.item import MS_PER_DAY, Status

from backend.computed.overview import load_overview
from backend.settings import Settings
from backend.store.reader import RequestStore
from tests.seed import error_map, make_item, seed_bulk, seed_every_state, write_items

NOW = int(time.time() * 1000)
HOUR = 3_600_000


def test_overview_of_every_state(ddb: Any, table_name: str, settings: Settings) -> None:
    seed_every_state(ddb, table_name, NOW)
    store = RequestStore(settings)
    overview = load_overview(store, settings, NOW - HOUR, NOW, NOW)

    # The 21 indexed requests of the seed (see tests/seed.py), judged with the default settings.
    assert asdict(overview.counts) == {
        "pending": 4,
        "processing": 3,
        "succeeded": 6,  # 8 succeeded, 2 of them expired
        "failed": 4,
        "cancelled": 0,
        "resolved": 0,
        "expiring": 2,
        "expired": 2,
        "stuck": 2,
        "unknown": 2,
        "oldest_pending_age_ms": 50 * 60_000,
    }
    assert asdict(overview.live) == {
        "pending": 4,
        "processing": 3,
        "succeeded": 0,
        "failed": 4,
        "cancelled": 0,
        "resolved": 0,
        "expiring": 0,
        "expired": 0,
        "stuck": 2,
        "unknown": 0,
        "oldest_pending_age_ms": 50 * 60_000,
    }
    assert overview.bucket_ms == 60_000
    assert overview.throughput["accepted"].sum() == 21
    assert overview.throughput["succeeded"].sum() == 8
    assert overview.throughput["failed"].sum() == 4
    assert len(overview.latency) == 12  # the finished ones
    table = overview.percentiles.set_index("stage")
    assert table.loc["end to end", "count"] == 12
    assert table.loc["queue wait", "p50"] == 300.0  # seed: started 300 ms after acceptance
    # window (21) + pending and processing (7) + failed, counted (4)
    assert overview.examined == 21 + 7 + 4


def test_overview_reads_only_the_range_and_the_open_requests(
    ddb: Any, table_name: str, settings: Settings
) -> None:
    # 600 old requests (days ago, all finished), 5 of them failed and still waiting for a person.
    seed_bulk(ddb, table_name, 600, NOW - 6 * MS_PER_DAY, NOW - 2 * MS_PER_DAY, failure_ratio=0.0)
    old_failed = [
        make_item(
            id=f"old-failed-{n}",
            status=Status.FAILED,
            created_at=NOW - 3 * MS_PER_DAY + n,
            error=error_map("declined"),
        )
        for n in range(5)
    ]
    # 25 recent ones: 20 succeeded, 3 failed, 2 pending.
    recent = [
        make_item(
            id=f"ok-{n}",
            status=Status.SUCCEEDED,
            created_at=NOW - 30 * 60_000 + n * 1_001,
            started_at=NOW - 29 * 60_000,
            finished_at=NOW - 28 * 60_000,
            ttl=NOW // 1000 + 86_400 * 7,
        )
        for n in range(20)
    ]
    recent += [
        make_item(
            id=f"failed-{n}",
            status=Status.FAILED,
            created_at=NOW - 20 * 60_000 + n,
            error=error_map("declined"),
        )
        for n in range(3)
    ]
    recent += [
        make_item(id=f"pending-{n}", status=Status.PENDING, created_at=NOW - 1_000 - n) for n in range(2)
    ]
    write_items(ddb, table_name, old_failed + recent)

    overview = load_overview(RequestStore(settings), settings, NOW - HOUR, NOW, NOW)
    assert overview.counts.succeeded == 20
    assert overview.counts.failed == 3
    assert overview.counts.pending == 2
    assert overview.live.failed == 8
    assert overview.live.pending == 2
    # The window's 25, the 2 pending, the 8 failed counted: none of the 600 finished old requests.
    assert overview.examined == 25 + 2 + 8
