"""The overview page's data: counts, live state, throughput and latency, read from the indexes only.

Cost: the requests created in the range (``byTime``) plus the open requests (``byState``: pending and
processing in full, failed as a count). Nothing else of the table is read, so an overview of the last hour
costs the same on a table of ten thousand requests as on one of ten million.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
from streamdesk_processor.item import Status

from backend.computed.stats import (
    StateCounts,
    choose_bucket_ms,
    count_states,
    latency_frame,
    latency_percentiles,
    throughput_frame,
)
from backend.settings import Settings
from backend.store.reader import RequestStore


@dataclass(frozen=True)
class Overview:
    since_ms: int
    until_ms: int
    now_ms: int
    counts: StateCounts  # requests created in the range
    live: StateCounts  # every open request right now, whatever its age (pending/processing/stuck/failed)
    throughput: pd.DataFrame  # stats.throughput_frame
    latency: pd.DataFrame  # stats.latency_frame
    percentiles: pd.DataFrame  # stats.latency_percentiles
    bucket_ms: int
    examined: int  # items read from DynamoDB


def load_overview(
    store: RequestStore, settings: Settings, since_ms: int, until_ms: int, now_ms: int
) -> Overview:
    """What the overview shows for requests created in ``[since_ms, until_ms]``, judged at ``now_ms``."""
    horizon_ms = settings.expiring_horizon_ms
    stuck_ms = settings.stuck_after_ms

    in_range, read_range = store.read_window(since_ms, until_ms)
    # Pending and processing items are needed in full (stuck, oldest wait); failures only as a number:
    # they stay until someone acts, and the failures page lists them.
    running, read_running = store.read_open((Status.PENDING, Status.PROCESSING))
    failed, read_failed = store.count_open((Status.FAILED,))

    live = replace(count_states(running, now_ms, horizon_ms, stuck_ms), failed=failed.get(Status.FAILED, 0))
    bucket_ms = choose_bucket_ms(since_ms, until_ms)
    latency = latency_frame(in_range)
    return Overview(
        since_ms=since_ms,
        until_ms=until_ms,
        now_ms=now_ms,
        counts=count_states(in_range, now_ms, horizon_ms, stuck_ms),
        live=live,
        throughput=throughput_frame(in_range, since_ms, until_ms, bucket_ms),
        latency=latency,
        percentiles=latency_percentiles(latency),
        bucket_ms=bucket_ms,
        examined=read_range + read_running + read_failed,
    )
