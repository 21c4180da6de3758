"""Stuck requests are told apart by their likely reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend.computed.stuck import (
    STREAM_RETENTION_MS,
    StuckReason,
    TriggerHealth,
    diagnose,
    find_stuck,
)
from backend.store.models import RequestSummary
from backend.trigger_state import TriggerMode, TriggerState

NOW = 10 * STREAM_RETENTION_MS
STUCK_AFTER = 300_000
HEALTHY = TriggerHealth(running=True, iterator_age_ms=200, heartbeat_at=NOW - 500)


def item(status: str, created: int, updated: int | None = None, started: int | None = None) -> RequestSummary:
    return RequestSummary(
        id=f"{status}-{created}", status=status, created_at=created, started_at=started, finished_at=None,
        updated_at=updated if updated is not None else created, attempts=0, ttl=None, error_type=None,
        error_message=None, error_step=None, redriven_at=None,
    )  # fmt: skip


def test_recent_or_final_requests_are_not_stuck() -> None:
    assert diagnose(item("PENDING", NOW - 1_000), HEALTHY, NOW, STUCK_AFTER) is None
    assert diagnose(item("SUCCEEDED", NOW - 10 * STUCK_AFTER), HEALTHY, NOW, STUCK_AFTER) is None
    assert diagnose(item("FAILED", NOW - 10 * STUCK_AFTER), HEALTHY, NOW, STUCK_AFTER) is None


@pytest.mark.parametrize(
    ("request_item", "trigger", "reason"),
    [
        (item("PENDING", NOW - STREAM_RETENTION_MS - 1), HEALTHY, StuckReason.BEYOND_STREAM_RETENTION),
        (item("PENDING", NOW - 2 * STUCK_AFTER), TriggerHealth(running=False), StuckReason.TRIGGER_STOPPED),
        (
            item("PENDING", NOW - 2 * STUCK_AFTER),
            TriggerHealth(running=True, iterator_age_ms=3_600_000),
            StuckReason.TRIGGER_LAGGING,
        ),
        (
            item("PROCESSING", NOW - 2 * STUCK_AFTER, started=NOW - 2 * STUCK_AFTER),
            HEALTHY,
            StuckReason.CLAIM_ABANDONED,
        ),
        (item("PENDING", NOW - 2 * STUCK_AFTER), HEALTHY, StuckReason.RECORD_LOST),
    ],
)
def test_reasons(request_item: RequestSummary, trigger: TriggerHealth, reason: StuckReason) -> None:
    found = diagnose(request_item, trigger, NOW, STUCK_AFTER)
    assert found is not None
    assert found.reason is reason


def test_local_state_file_to_health() -> None:
    assert TriggerHealth.from_local_state(None, NOW).running is False
    fresh = TriggerState(
        pid=1,
        started_at=NOW - 9_000,
        heartbeat_at=NOW - 1_000,
        iterator_age_ms=120,
        last_batch_at=NOW - 5_000,
    )
    health = TriggerHealth.from_local_state(fresh, NOW)
    assert health.running is True and health.iterator_age_ms == 120
    stale = replace(fresh, heartbeat_at=NOW - 60_000)
    assert TriggerHealth.from_local_state(stale, NOW).running is False
    assert TriggerHealth.from_local_state(replace(fresh, mode=TriggerMode.STOPPED), NOW).running is False


def test_find_stuck_orders_longest_idle_first() -> None:
    items = [
        item("PENDING", NOW - 2 * STUCK_AFTER),
        item("PENDING", NOW - 5 * STUCK_AFTER),
        item("PENDING", NOW),
    ]
    found = find_stuck(items, HEALTHY, NOW, STUCK_AFTER)
    assert [f.idle_ms for f in found] == [5 * STUCK_AFTER, 2 * STUCK_AFTER]


def test_one_definition_of_stuck_for_the_overview_and_the_health_page() -> None:
    from backend.computed.stats import Category, categories

    waiting_for_retry = item("PENDING", NOW - 2 * STUCK_AFTER, updated=NOW - 10_000)  # back after a retry
    at_threshold = item("PENDING", NOW - STUCK_AFTER)
    processing = item("PROCESSING", NOW - 3 * STUCK_AFTER, started=NOW - 2 * STUCK_AFTER)
    for request_item in (waiting_for_retry, at_threshold, processing):
        counted = Category.STUCK in categories(request_item, NOW, 0, STUCK_AFTER)
        listed = diagnose(request_item, HEALTHY, NOW, STUCK_AFTER) is not None
        assert counted == listed, request_item
    assert diagnose(waiting_for_retry, HEALTHY, NOW, STUCK_AFTER) is not None
    assert diagnose(at_threshold, HEALTHY, NOW, STUCK_AFTER) is None
    found = diagnose(processing, HEALTHY, NOW, STUCK_AFTER)
    assert found is not None and found.idle_ms == 2 * STUCK_AFTER  # measured from startedAt
