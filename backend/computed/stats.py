"""Statistics of requests for the overview: pure functions, no I/O.

Conventions (the tests pin the boundaries):
- EXPIRED: succeeded and ``ttl`` (epoch seconds) <= now. Not live, and not counted as succeeded, because
  DynamoDB deletes expired items only eventually and until then they still come back from queries.
- EXPIRING: succeeded and not expired, ``ttl`` within the horizon (``ttl - now <= horizon``).
- STUCK: pending or processing for strictly longer than ``stuck_after``: PROCESSING measured from
  ``startedAt`` (``createdAt`` if missing), PENDING from the later of ``createdAt`` and ``redrivenAt``.
- CANCELLED, RESOLVED: closed by a person (a cancelled pending request, a failure closed without a retry);
  EXPIRED like a success once their ``ttl`` has passed.
- UNKNOWN: a missing or unrecognised status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from streamdesk_processor.item import FAILED_OUTCOMES, MS_PER_DAY, Status

from backend.clock import HOUR_MS
from backend.store.models import RequestSummary

# Candidate bucket widths for charts, smallest first.
BUCKET_CHOICES_MS: tuple[int, ...] = (
    30_000,
    60_000,
    5 * 60_000,
    15 * 60_000,
    HOUR_MS,
    6 * HOUR_MS,
    MS_PER_DAY,
)
# The bucket count a chart looks best with; the choice minimises the distance to it on a log scale.
TARGET_BUCKETS = 45

STAGES: tuple[tuple[str, str], ...] = (
    ("queue wait", "queue_wait_ms"),
    ("processing", "processing_ms"),
    ("end to end", "end_to_end_ms"),
)
LATENCY_COLUMNS = ("id", "created", "status", "queue_wait_ms", "processing_ms", "end_to_end_ms")
_EPOCH = pd.Timestamp(0, tz="UTC")
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))


class Category(StrEnum):
    """What the dashboard counts; a request can be in more than one (e.g. SUCCEEDED and EXPIRING)."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    RESOLVED = "RESOLVED"
    EXPIRING = "EXPIRING"
    EXPIRED = "EXPIRED"
    STUCK = "STUCK"
    UNKNOWN = "UNKNOWN"


def waiting_since_ms(s: RequestSummary) -> int | None:
    """When an open request's current wait began (see the module docstring), or None if unknown."""
    if s.status == Status.PROCESSING:
        return s.started_at if s.started_at is not None else s.created_at
    if s.status == Status.PENDING:
        marks = [mark for mark in (s.created_at, s.redriven_at) if mark is not None]
        return max(marks) if marks else None
    return None


def stuck_for_ms(s: RequestSummary, now_ms: int, stuck_after_ms: int) -> int | None:
    """How long an open request has waited, if that is longer than ``stuck_after_ms`` (else None).

    The one definition of "stuck": the overview's count and the health page's list both use it.
    """
    if s.status not in (Status.PENDING, Status.PROCESSING):
        return None
    since = waiting_since_ms(s)
    if since is None or now_ms - since <= stuck_after_ms:
        return None
    return now_ms - since


def categories(
    s: RequestSummary, now_ms: int, expiring_horizon_ms: int, stuck_after_ms: int
) -> frozenset[Category]:
    """The categories of one request at ``now_ms``."""
    if s.status == Status.SUCCEEDED:
        if s.ttl is None:
            return frozenset({Category.SUCCEEDED})
        expires_ms = s.ttl * 1000
        if expires_ms <= now_ms:
            return frozenset({Category.EXPIRED})
        if expires_ms - now_ms <= expiring_horizon_ms:
            return frozenset({Category.SUCCEEDED, Category.EXPIRING})
        return frozenset({Category.SUCCEEDED})
    if s.status == Status.FAILED:
        return frozenset({Category.FAILED})
    if s.status in (Status.CANCELLED, Status.RESOLVED):
        expired = s.ttl is not None and s.ttl * 1000 <= now_ms
        return frozenset({Category.EXPIRED if expired else Category(s.status)})
    if s.status in (Status.PENDING, Status.PROCESSING):
        found = {Category(s.status)}
        if stuck_for_ms(s, now_ms, stuck_after_ms) is not None:
            found.add(Category.STUCK)
        return frozenset(found)
    return frozenset({Category.UNKNOWN})


@dataclass(frozen=True)
class StateCounts:
    """How many requests are in each category. ``succeeded`` excludes expired ones."""

    pending: int = 0
    processing: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    resolved: int = 0
    expiring: int = 0
    expired: int = 0
    stuck: int = 0
    unknown: int = 0
    # Age of the longest wait among PENDING requests (from createdAt, or redrivenAt after a redrive).
    oldest_pending_age_ms: int | None = None


def count_states(
    items: Iterable[RequestSummary], now_ms: int, expiring_horizon_ms: int, stuck_after_ms: int
) -> StateCounts:
    """Counts per category at ``now_ms``."""
    totals = dict.fromkeys(Category, 0)
    oldest: int | None = None
    for s in items:
        for category in categories(s, now_ms, expiring_horizon_ms, stuck_after_ms):
            totals[category] += 1
        if s.status == Status.PENDING:
            since = waiting_since_ms(s)
            if since is not None:
                age = max(0, now_ms - since)
                oldest = age if oldest is None else max(oldest, age)
    return StateCounts(
        pending=totals[Category.PENDING],
        processing=totals[Category.PROCESSING],
        succeeded=totals[Category.SUCCEEDED],
        failed=totals[Category.FAILED],
        cancelled=totals[Category.CANCELLED],
        resolved=totals[Category.RESOLVED],
        expiring=totals[Category.EXPIRING],
        expired=totals[Category.EXPIRED],
        stuck=totals[Category.STUCK],
        unknown=totals[Category.UNKNOWN],
        oldest_pending_age_ms=oldest,
    )


def choose_bucket_ms(since_ms: int, until_ms: int) -> int:
    """A bucket width from ``BUCKET_CHOICES_MS`` giving about 30-60 buckets over the range."""
    span = max(until_ms - since_ms, 1)
    return min(BUCKET_CHOICES_MS, key=lambda width: abs(np.log(span / width / TARGET_BUCKETS)))


def _bucket_starts(since_ms: int, until_ms: int, bucket_ms: int) -> list[int]:
    first = since_ms - since_ms % bucket_ms
    return list(range(first, max(until_ms, since_ms) + 1, bucket_ms))


def _to_utc(ms: Iterable[int] | pd.Series) -> pd.DatetimeIndex:
    """Epoch milliseconds as tz-aware UTC datetimes (always nanosecond resolution)."""
    return pd.DatetimeIndex(pd.to_datetime(list(ms), unit="ms", utc=True)).as_unit("ns")


def throughput_frame(
    items: Iterable[RequestSummary], since_ms: int, until_ms: int, bucket_ms: int
) -> pd.DataFrame:
    """Per bucket (every bucket, zeros included): accepted (by createdAt), succeeded and failed (by
    finishedAt), failure_rate = failed / (succeeded + failed), NaN without any finished request.

    Only timestamps inside ``[since_ms, until_ms]`` count. Expired requests count as succeeded: they did.
    """
    starts = _bucket_starts(since_ms, until_ms, bucket_ms)
    first = starts[0]
    accepted = np.zeros(len(starts), dtype=np.int64)
    succeeded = np.zeros(len(starts), dtype=np.int64)
    failed = np.zeros(len(starts), dtype=np.int64)

    def slot(ms: int | None) -> int | None:
        if ms is None or ms < since_ms or ms > until_ms:
            return None
        return (ms - first) // bucket_ms

    for s in items:
        index = slot(s.created_at)
        if index is not None:
            accepted[index] += 1
        index = slot(s.finished_at)
        if index is not None:
            if s.status == Status.SUCCEEDED:
                succeeded[index] += 1
            elif s.status in FAILED_OUTCOMES:  # a failure closed since still failed then
                failed[index] += 1
    return throughput_table(starts, accepted, succeeded, failed)


def throughput_table(
    starts: Sequence[int], accepted: np.ndarray, succeeded: np.ndarray, failed: np.ndarray
) -> pd.DataFrame:
    """The throughput chart's frame, whatever it was counted from (items here, rollups in
    ``rollup_frames``): one row per bucket start, and failure_rate = failed / (succeeded + failed), NaN
    where nothing finished."""
    finished = succeeded + failed
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(finished > 0, failed / np.maximum(finished, 1), np.nan)
    return pd.DataFrame(
        {
            "time": _to_utc(starts),
            "accepted": accepted,
            "succeeded": succeeded,
            "failed": failed,
            "failure_rate": rate.astype(float),
        }
    )


def latency_frame(items: Iterable[RequestSummary]) -> pd.DataFrame:
    """One row per finished request with all three timestamps. The wait runs from when the request last
    entered PENDING (accepted, or redriven by a person) to the start of the latest attempt, so automatic
    retries count as waiting but the hours before someone pressed "retry" do not skew the pipeline's
    percentiles; end to end runs from the same mark."""
    rows = []
    for s in items:
        if s.status != Status.SUCCEEDED and s.status not in FAILED_OUTCOMES:
            continue
        if s.created_at is None or s.started_at is None or s.finished_at is None:
            continue
        entered = max(s.created_at, s.redriven_at or s.created_at)
        if s.started_at < entered:  # a redrive recorded after the attempt shown: not a consistent record
            entered = s.created_at
        rows.append(
            (
                s.id,
                s.created_at,
                s.status,
                s.started_at - entered,
                s.finished_at - s.started_at,
                s.finished_at - entered,
            )
        )
    frame = pd.DataFrame(rows, columns=list(LATENCY_COLUMNS))
    frame["created"] = _to_utc(frame["created"].astype("int64"))
    for column in ("queue_wait_ms", "processing_ms", "end_to_end_ms"):
        frame[column] = frame[column].astype("int64")
    frame["id"] = frame["id"].astype(object)
    frame["status"] = frame["status"].astype(object)
    return frame


def _percentile_row(values: pd.Series) -> dict[str, float | int]:
    clean = values.dropna().to_numpy(dtype=float)
    row: dict[str, float | int] = {}
    for name, q in PERCENTILES:
        row[name] = float(np.percentile(clean, q)) if clean.size else float("nan")
    row["count"] = int(clean.size)
    return row


def latency_percentiles(frame: pd.DataFrame) -> pd.DataFrame:
    """p50/p95/p99 (numpy's linear interpolation) and count per stage; one row per stage, always."""
    rows = [{"stage": stage, **_percentile_row(frame[column])} for stage, column in STAGES]
    return pd.DataFrame(rows, columns=["stage", "p50", "p95", "p99", "count"])


def latency_over_time(frame: pd.DataFrame, bucket_ms: int) -> pd.DataFrame:
    """Percentiles per stage per bucket of ``created`` (buckets without finished requests are absent)."""
    columns = ["time", "stage", "p50", "p95", "p99", "count"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    # Whatever the datetime unit pandas chose, milliseconds since the epoch:
    created_ms = (frame["created"] - _EPOCH) // pd.Timedelta(milliseconds=1)
    starts = created_ms - created_ms % bucket_ms
    rows = []
    for start in sorted(set(starts.tolist())):
        group = frame[starts == start]
        time = pd.Timestamp(int(start), unit="ms", tz="UTC")
        for stage, column in STAGES:
            rows.append({"time": time, "stage": stage, **_percentile_row(group[column])})
    return pd.DataFrame(rows, columns=columns)
