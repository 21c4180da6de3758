"""backend.computed.stats as plain functions: classification boundaries, counts, buckets, frames,
percentiles."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamdesk_processor.item import Status

from backend.computed.stats import (
    Category,
    categories,
    choose_bucket_ms,
    count_states,
    latency_frame,
    latency_over_time,
    latency_percentiles,
    throughput_frame,
)
from backend.store.models import RequestSummary

NOW = 1_795_000_000_000  # epoch ms
HORIZON = 3_600_000  # 1 h
STUCK = 300_000  # 5 min


def summary(**fields: Any) -> RequestSummary:
    base: dict[str, Any] = {
        "id": "r",
        "status": Status.SUCCEEDED,
        "created_at": NOW - 10_000,
        "started_at": None,
        "finished_at": None,
        "updated_at": None,
        "attempts": 1,
        "ttl": None,
        "error_type": None,
        "error_message": None,
        "error_step": None,
        "redriven_at": None,
    }
    base.update(fields)
    return RequestSummary(**base)


def cats(s: RequestSummary) -> frozenset[Category]:
    return categories(s, NOW, HORIZON, STUCK)


# ------------------------------------------------------------------------------ classification
def test_succeeded_without_ttl_or_far_ttl_is_just_succeeded() -> None:
    assert cats(summary()) == {Category.SUCCEEDED}
    assert cats(summary(ttl=(NOW + HORIZON) // 1000 + 1)) == {Category.SUCCEEDED}


def test_expiring_boundary_is_inclusive_of_the_horizon() -> None:
    assert cats(summary(ttl=(NOW + HORIZON) // 1000)) == {Category.SUCCEEDED, Category.EXPIRING}
    assert cats(summary(ttl=NOW // 1000 + 1)) == {Category.SUCCEEDED, Category.EXPIRING}


def test_expired_once_ttl_reached_and_nothing_else() -> None:
    assert cats(summary(ttl=NOW // 1000)) == {Category.EXPIRED}
    assert cats(summary(ttl=NOW // 1000 - 86_400)) == {Category.EXPIRED}


def test_stuck_pending_measured_from_created_strictly_longer() -> None:
    assert cats(summary(status=Status.PENDING, created_at=NOW - STUCK)) == {Category.PENDING}
    assert cats(summary(status=Status.PENDING, created_at=NOW - STUCK - 1)) == {
        Category.PENDING,
        Category.STUCK,
    }


def test_stuck_pending_after_redrive_measured_from_redrive() -> None:
    old = summary(status=Status.PENDING, created_at=NOW - 86_400_000, redriven_at=NOW - 1_000)
    assert cats(old) == {Category.PENDING}
    assert cats(summary(status=Status.PENDING, created_at=NOW - 86_400_000, redriven_at=NOW - STUCK - 1)) == {
        Category.PENDING,
        Category.STUCK,
    }


def test_stuck_processing_measured_from_started() -> None:
    long_queued = summary(status=Status.PROCESSING, created_at=NOW - 10 * STUCK, started_at=NOW - 1_000)
    assert cats(long_queued) == {Category.PROCESSING}
    slow = summary(status=Status.PROCESSING, created_at=NOW - 10 * STUCK, started_at=NOW - STUCK - 1)
    assert cats(slow) == {Category.PROCESSING, Category.STUCK}


def test_failed_and_unknown() -> None:
    assert cats(summary(status=Status.FAILED, ttl=1)) == {Category.FAILED}
    assert cats(summary(status="")) == {Category.UNKNOWN}
    assert cats(summary(status="WEIRD")) == {Category.UNKNOWN}
    assert cats(summary(status="pending")) == {Category.UNKNOWN}


def test_closed_states_are_their_own_category_until_their_ttl_passes() -> None:
    for status in (Status.CANCELLED, Status.RESOLVED):
        assert cats(summary(status=status, ttl=NOW // 1000 + 60)) == {Category(status.value)}
        assert cats(summary(status=status, ttl=None)) == {Category(status.value)}
        assert cats(summary(status=status, ttl=NOW // 1000 - 60)) == {Category.EXPIRED}
    counts = count_states(
        [
            summary(id="c", status=Status.CANCELLED, ttl=NOW // 1000 + 60),
            summary(id="r", status=Status.RESOLVED, ttl=NOW // 1000 + 60),
            summary(id="r2", status=Status.RESOLVED, ttl=NOW // 1000 + 60),
            summary(id="x", status=Status.RESOLVED, ttl=NOW // 1000 - 60),
        ],
        NOW,
        HORIZON,
        STUCK,
    )
    assert (counts.cancelled, counts.resolved, counts.expired, counts.failed) == (1, 2, 1, 0)


def test_count_states_excludes_expired_from_succeeded_and_finds_oldest_pending() -> None:
    items = [
        summary(id="a"),
        summary(id="b", ttl=NOW // 1000 + 60),  # expiring
        summary(id="c", ttl=NOW // 1000 - 60),  # expired
        summary(id="d", status=Status.PENDING, created_at=NOW - 1_000),
        summary(id="e", status=Status.PENDING, created_at=NOW - 400_000),  # stuck
        summary(id="f", status=Status.PROCESSING, started_at=NOW - 1_000),
        summary(id="g", status=Status.FAILED),
        summary(id="h", status=""),
    ]
    counts = count_states(items, NOW, HORIZON, STUCK)
    assert asdict(counts) == {
        "pending": 2,
        "processing": 1,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 0,
        "resolved": 0,
        "expiring": 1,
        "expired": 1,
        "stuck": 1,
        "unknown": 1,
        "oldest_pending_age_ms": 400_000,
    }
    assert count_states([], NOW, HORIZON, STUCK).oldest_pending_age_ms is None


# ------------------------------------------------------------------------------------ buckets
@pytest.mark.parametrize(
    ("span_ms", "bucket_ms"),
    [
        (15 * 60_000, 30_000),
        (3_600_000, 60_000),
        (6 * 3_600_000, 5 * 60_000),
        (24 * 3_600_000, 3_600_000),
        (7 * 86_400_000, 6 * 3_600_000),
        (30 * 86_400_000, 86_400_000),
    ],
)
def test_choose_bucket_gives_a_readable_number_of_buckets(span_ms: int, bucket_ms: int) -> None:
    assert choose_bucket_ms(NOW - span_ms, NOW) == bucket_ms
    assert 20 <= span_ms / bucket_ms <= 100


def test_choose_bucket_for_tiny_and_empty_ranges() -> None:
    assert choose_bucket_ms(NOW, NOW) == 30_000
    assert choose_bucket_ms(NOW - 1_000, NOW) == 30_000


# --------------------------------------------------------------------------------- throughput
def test_throughput_has_every_bucket_with_zeros_and_counts_by_the_right_timestamp() -> None:
    since = 1_000_000_020_000  # not aligned: the first bucket starts at the minute before
    until = since + 5 * 60_000
    first = since - since % 60_000
    items = [
        # accepted in bucket 0, succeeded in bucket 2
        summary(id="a", created_at=since + 1_000, finished_at=first + 2 * 60_000 + 5),
        # accepted in bucket 0, failed in bucket 2
        summary(id="b", status=Status.FAILED, created_at=since + 2_000, finished_at=first + 2 * 60_000 + 9),
        # accepted in bucket 4, still pending
        summary(id="c", status=Status.PENDING, created_at=first + 4 * 60_000),
        # accepted before the range (not counted), finished in it
        summary(id="d", created_at=since - 1, finished_at=first + 3 * 60_000),
        # finished after the range: not counted
        summary(id="e", status=Status.FAILED, created_at=since + 3_000, finished_at=until + 1),
    ]
    frame = throughput_frame(items, since, until, 60_000)
    assert list(frame.columns) == ["time", "accepted", "succeeded", "failed", "failure_rate"]
    assert len(frame) == 6  # buckets starting first .. first + 5 min (until lies in the last)
    assert str(frame["time"].dt.tz) == "UTC"
    assert frame["time"].iloc[0] == pd.Timestamp(first, unit="ms", tz="UTC")
    assert frame["accepted"].tolist() == [3, 0, 0, 0, 1, 0]
    assert frame["succeeded"].tolist() == [0, 0, 1, 1, 0, 0]
    assert frame["failed"].tolist() == [0, 0, 1, 0, 0, 0]
    rates = frame["failure_rate"].tolist()
    assert math.isnan(rates[0]) and math.isnan(rates[1])
    assert rates[2] == 0.5
    assert rates[3] == 0.0


def test_throughput_of_nothing_is_all_zero_buckets() -> None:
    frame = throughput_frame([], NOW - 3_600_000, NOW, 60_000)
    assert len(frame) >= 60
    assert frame[["accepted", "succeeded", "failed"]].to_numpy().sum() == 0
    assert frame["failure_rate"].isna().all()


# ------------------------------------------------------------------------------------ latency
def finished(n: int, created: int, wait: int, work: int, status: str = Status.SUCCEEDED) -> RequestSummary:
    return summary(
        id=f"r{n}",
        status=status,
        created_at=created,
        started_at=created + wait,
        finished_at=created + wait + work,
    )


def test_latency_frame_one_row_per_finished_request_with_all_timestamps() -> None:
    items = [
        finished(1, NOW - 5_000, 100, 40),
        finished(2, NOW - 4_000, 200, 60, Status.FAILED),
        summary(id="pending", status=Status.PENDING),
        summary(id="no-start", finished_at=NOW),
        summary(id="no-created", created_at=None, started_at=NOW - 10, finished_at=NOW),
    ]
    frame = latency_frame(items)
    assert frame["id"].tolist() == ["r1", "r2"]
    assert frame["queue_wait_ms"].tolist() == [100, 200]
    assert frame["processing_ms"].tolist() == [40, 60]
    assert frame["end_to_end_ms"].tolist() == [140, 260]
    assert frame["status"].tolist() == [Status.SUCCEEDED, Status.FAILED]
    assert frame["created"].iloc[0] == pd.Timestamp(NOW - 5_000, unit="ms", tz="UTC")


def test_latency_frame_has_its_columns_when_empty() -> None:
    frame = latency_frame([summary(status=Status.PENDING)])
    assert frame.empty
    assert list(frame.columns) == [
        "id",
        "created",
        "status",
        "queue_wait_ms",
        "processing_ms",
        "end_to_end_ms",
    ]


def test_percentiles_match_numpy_on_known_data() -> None:
    rng = np.random.default_rng(3)
    waits = rng.integers(1, 5_000, size=257)
    works = rng.integers(1, 900, size=257)
    items = [
        finished(n, NOW - 100_000 + n, int(w), int(k))
        for n, (w, k) in enumerate(zip(waits, works, strict=True))
    ]
    table = latency_percentiles(latency_frame(items)).set_index("stage")
    assert list(table.index) == ["queue wait", "processing", "end to end"]
    for stage, values in (("queue wait", waits), ("processing", works), ("end to end", waits + works)):
        for column, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            assert table.loc[stage, column] == pytest.approx(np.percentile(values, q))
        assert table.loc[stage, "count"] == 257


def test_percentiles_on_a_tiny_sample_are_exact() -> None:
    items = [finished(n, NOW, wait, 10) for n, wait in enumerate([10, 20, 30, 40])]
    row = latency_percentiles(latency_frame(items)).set_index("stage").loc["queue wait"]
    assert row["p50"] == 25.0
    assert row["p99"] == pytest.approx(39.7)


def test_percentiles_of_nothing_are_nan_with_zero_count() -> None:
    table = latency_percentiles(latency_frame([]))
    assert len(table) == 3
    assert table["count"].tolist() == [0, 0, 0]
    assert table["p50"].isna().all()


def test_latency_over_time_per_bucket_and_stage() -> None:
    base = 1_000_000_000_000 - 1_000_000_000_000 % 60_000
    items = [finished(1, base + 1_000, 100, 10), finished(2, base + 2_000, 300, 30)]
    items += [finished(3, base + 120_000, 50, 5)]
    over = latency_over_time(latency_frame(items), 60_000)
    assert list(over.columns)[:5] == ["time", "stage", "p50", "p95", "p99"]
    assert len(over) == 6  # two buckets with data x three stages; the empty minute is absent
    first = over[(over["time"] == pd.Timestamp(base, unit="ms", tz="UTC")) & (over["stage"] == "queue wait")]
    assert first["p50"].item() == 200.0
    later = over[
        (over["time"] == pd.Timestamp(base + 120_000, unit="ms", tz="UTC")) & (over["stage"] == "processing")
    ]
    assert later["p99"].item() == 5.0
    assert latency_over_time(latency_frame([]), 60_000).empty


def test_a_redriven_request_waits_from_its_redrive_not_from_its_creation() -> None:
    day = 86_400_000
    redriven = summary(
        id="r", status="SUCCEEDED", created_at=0, redriven_at=day, started_at=day + 300, finished_at=day + 500
    )
    plain = summary(id="p", status="SUCCEEDED", created_at=0, started_at=200, finished_at=450)
    frame = latency_frame([redriven, plain]).set_index("id")
    assert frame.loc["r", "queue_wait_ms"] == 300  # not a day and 300 ms: a person's delay is not latency
    assert frame.loc["r", "end_to_end_ms"] == 500
    assert frame.loc["p", "queue_wait_ms"] == 200 and frame.loc["p", "end_to_end_ms"] == 450


def test_percentiles_of_one_to_a_hundred_worked_by_hand() -> None:
    # Linear interpolation between order statistics: rank = q/100 * (n - 1) on the sorted values 1..100.
    # p50: rank 49.5 -> 50.5; p95: rank 94.05 -> 95.05; p99: rank 98.01 -> 99.01.
    items = [
        summary(id=f"r{n}", status="SUCCEEDED", created_at=0, started_at=n, finished_at=n + 1)
        for n in range(1, 101)
    ]
    row = latency_percentiles(latency_frame(items)).set_index("stage").loc["queue wait"]
    assert (row["p50"], row["p95"], row["p99"], row["count"]) == pytest.approx((50.5, 95.05, 99.01, 100))


def test_a_failure_closed_since_still_failed_then_and_cancelled_never_finished() -> None:
    """History does not change when a person closes a failure later: RESOLVED counts as the failure it
    was (throughput, failure rate, latency); a cancelled request never ran, so it counts in neither."""
    since = 1_000_000_020_000
    first = since - since % 60_000
    closed = summary(
        id="r", status=Status.RESOLVED, created_at=since, started_at=since + 10, finished_at=first + 60_005
    )
    cancelled = summary(id="c", status=Status.CANCELLED, created_at=since, finished_at=first + 60_010)
    frame = throughput_frame([closed, cancelled], since, since + 3 * 60_000, 60_000)
    assert frame["failed"].tolist()[:2] == [0, 1]
    assert frame["succeeded"].sum() == 0 and frame["failure_rate"].tolist()[1] == 1.0
    latency = latency_frame([closed, cancelled])
    assert latency["id"].tolist() == ["r"] and latency["processing_ms"].tolist() == [
        first + 60_005 - since - 10
    ]
