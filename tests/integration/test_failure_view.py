"""The failures page's view against DynamoDB Local: open failures per group from a bounded list, each
group's failures over a range from the rollups (minutes at the ragged start, hours after), the open total
from the gauge, and the rollups' trouble reported without hiding the open failures."""

from __future__ import annotations

from typing import Any

from streamdesk_rollups.schema import MS_PER_HOUR, MS_PER_MINUTE

from backend.computed.failure_view import load_failures_view
from backend.operations import Pipeline
from backend.rollups.ranges import range_total
from backend.rollups.reader import RollupReader
from backend.settings import Settings
from backend.store.calls import GuardedClient
from backend.store.reader import RequestStore
from tests.rollups_seed import seed_rollups
from tests.seed import error_map, make_item, write_items

NOW = 1_790_000_000_000 - 1_790_000_000_000 % MS_PER_HOUR + 20 * MS_PER_MINUTE  # 20 minutes into an hour


def failure(n: int, finished: int, message: str) -> dict[str, Any]:
    return make_item(
        id=f"f{n:03}",
        status="FAILED",
        created_at=finished - 1_000,
        started_at=finished - 500,
        finished_at=finished,
        attempts=1,
        error=error_map(message),
    )


def seed(ddb: Any, settings: Settings) -> None:
    """Card failures over the last 30 hours (one every 30 minutes, 60 in all) and 3 address failures."""
    items = [failure(n, NOW - n * 30 * MS_PER_MINUTE, f"card declined for order {n}") for n in range(60)]
    items += [failure(100 + n, NOW - n * MS_PER_MINUTE, f"address {n} unknown") for n in range(3)]
    write_items(ddb, settings.table, items)
    seed_rollups(ddb, settings.table, settings.rollups_table, settings.rollups_shards)


def reader(ddb: Any, settings: Settings) -> RollupReader:
    return RollupReader(GuardedClient(ddb), settings.rollups_table, settings.rollups_shards)


def test_open_failures_are_a_bounded_list_and_counts_come_from_the_rollups(
    ddb: Any, settings: Settings
) -> None:
    seed(ddb, settings)
    store = RequestStore(settings)
    day = load_failures_view(store, reader(ddb, settings), NOW - 24 * MS_PER_HOUR, NOW, limit=10)
    assert day.listed == 10 and day.more_open  # the ten newest only
    assert day.open_total == 63  # the gauge, exact whatever the list holds
    card, address = day.groups
    assert (address.pattern, address.open_now, address.failed_in_range) == ("address <n> unknown", 3, 3)
    assert (card.pattern, card.open_now) == ("card declined for order <n>", 7)
    # 24 hours back from 20 past the hour: finishes at NOW - n * 30 min for n = 0..48 (49 of them).
    assert card.failed_in_range == 49 and day.failed_in_range == 52
    assert card.open is not None and len(card.open.request_ids) == 7

    whole = load_failures_view(store, reader(ddb, settings), NOW - 24 * MS_PER_HOUR, NOW)
    assert not whole.more_open and whole.listed == 63
    assert [g.open_now for g in whole.groups] == [60, 3]
    assert [g.failed_in_range for g in whole.groups] == [49, 3]  # the range, not the open list
    # The whole group for a retry: every open failure of it, read on the click.
    assert len(Pipeline.connect(settings).failed_ids(card.key)) == 60


def test_a_range_is_exact_to_the_minute_across_minute_and_hour_buckets(ddb: Any, settings: Settings) -> None:
    seed(ddb, settings)
    rollups = reader(ddb, settings)
    for hours, minutes in ((1, 0), (7, 10), (24, 0), (29, 50)):
        since = NOW - hours * MS_PER_HOUR - minutes * MS_PER_MINUTE
        expected = sum(1 for n in range(60) if NOW - n * 30 * MS_PER_MINUTE >= since) + 3
        assert range_total(rollups, since, NOW).counts["failed"] == expected, (hours, minutes)  # type: ignore[index]
    assert rollups.items_read < 4 * (60 + 30) + 20  # buckets per shard, never the requests


def test_without_rollups_the_open_failures_still_show(ddb: Any, settings: Settings) -> None:
    write_items(ddb, settings.table, [failure(1, NOW, "card declined for order 1")])
    view = load_failures_view(RequestStore(settings), reader(ddb, settings), NOW - MS_PER_HOUR, NOW)
    assert view.counts_error is not None and "does not exist" in view.counts_error
    assert [(g.open_now, g.failed_in_range) for g in view.groups] == [(1, None)]
    assert view.open_total is None
