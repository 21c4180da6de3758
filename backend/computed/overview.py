"""The overview page's data, from the rollups and a few bounded index queries: it costs the same at 1 request
a second and at 5,000.

- The range's figures (counts of transitions, throughput and failure rate, latency over time, percentiles
  and distribution) come from the rollups (``RollupReader``): minute buckets for ranges up to
  :data:`MINUTE_GRAIN_MAX_MS`, hour buckets beyond, so a range reads at most a few hundred buckets per
  write shard whatever the traffic. The range is read from the start of the bucket holding its start
  (``covered_since_ms``), so its figures cover whole buckets.
- "Right now": open failures from the rollups' gauge, pending / processing / stuck / oldest pending from
  bounded ``byState`` queries (``RequestStore.live_state``), and the successes TTL is about to delete from
  the hour rollups of the day the retention ends in.

Nothing here reads request items in proportion to the traffic.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import pandas as pd
from streamdesk_processor.item import MS_PER_DAY
from streamdesk_rollups.schema import Grain, Transition, bucket_start, count_attribute

from backend.clock import HOUR_MS
from backend.computed import rollup_frames
from backend.computed.stats import BUCKET_CHOICES_MS, choose_bucket_ms
from backend.rollups.model import Rollup
from backend.rollups.reader import RollupReader
from backend.settings import Settings
from backend.store.live_state import LiveState
from backend.store.reader import RequestStore

MINUTE_GRAIN_MAX_MS: Final = 6 * HOUR_MS  # up to 360 minute buckets; longer ranges read hours
MAX_RANGE_MS: Final = 30 * MS_PER_DAY  # up to 720 hour buckets
# The right-now reads run beside the range's; each of them fans out on its own module's pool.
_BESIDE: Final = ThreadPoolExecutor(max_workers=3, thread_name_prefix="streamdesk-overview")


@dataclass(frozen=True)
class Expiring:
    """Succeeded requests whose TTL falls due within the horizon: those that finished in
    ``[since_ms, until_ms]`` (whole hours around ``now - retention``, up to ``+ horizon``)."""

    count: int
    since_ms: int
    until_ms: int


@dataclass(frozen=True)
class Overview:
    since_ms: int  # the range asked for (a longer one is cut to MAX_RANGE_MS: ``cut`` says so)
    until_ms: int
    now_ms: int
    covered_since_ms: int  # the start of the first bucket read: the figures cover [covered_since, until]
    grain: Grain
    cut: bool
    counts: dict[Transition, int]  # transitions in the range, every member of Transition present
    live: LiveState  # right now
    open_failures: int  # right now: the rollups' gauge (FAILED entered minus FAILED left)
    expiring: Expiring  # right now
    throughput: pd.DataFrame  # rollup_frames.throughput
    latency_over_time: pd.DataFrame  # rollup_frames.latency_over_time
    percentiles: pd.DataFrame  # rollup_frames.percentiles
    distribution: pd.DataFrame  # rollup_frames.distribution
    bucket_ms: int  # the chart's bucket width (a whole number of the grain's buckets)
    buckets_read: int  # rollup buckets in the range that held anything
    examined: int  # items read from DynamoDB: rollup items (range, gauge, expiring) + index items
    counted: int  # index entries DynamoDB counted (Select=COUNT) without returning them

    @property
    def quiet(self) -> bool:
        """Nothing counted in the range and nothing open right now."""
        live = self.live
        return (
            not any(self.counts.values())
            and not (live.pending or live.processing or live.cancelled or live.resolved)
            and not self.open_failures
            and not self.expiring.count
        )


def choose_grain(since_ms: int, until_ms: int) -> Grain:
    return Grain.MINUTE if until_ms - since_ms <= MINUTE_GRAIN_MAX_MS else Grain.HOUR


def chart_bucket_ms(since_ms: int, until_ms: int, grain: Grain) -> int:
    """About 45 chart buckets over the range (``stats.choose_bucket_ms``), never finer than the grain."""
    return max(choose_bucket_ms(since_ms, until_ms), min(w for w in BUCKET_CHOICES_MS if w >= grain.ms))


def expiring(reader: RollupReader, settings: Settings, now_ms: int) -> Expiring:
    """Successes whose TTL (finish + RetentionDays) falls within the horizon: those that finished between
    ``now - retention`` and ``now - retention + horizon``, from hour buckets (the first one whole, so up
    to an hour of successes already past their TTL but maybe not deleted yet are included)."""
    since = bucket_start(now_ms - settings.succeeded_days * MS_PER_DAY, Grain.HOUR)
    until = now_ms - settings.succeeded_days * MS_PER_DAY + settings.expiring_horizon_ms
    succeeded = count_attribute(Transition.SUCCEEDED)
    total = reader.total(since, until, Grain.HOUR, name_groups=False, only=(succeeded,))
    return Expiring(total.counts.get(Transition.SUCCEEDED, 0), since, until)


def load_overview(
    store: RequestStore, settings: Settings, since_ms: int, until_ms: int, now_ms: int
) -> Overview:
    """What the overview shows for ``[since_ms, until_ms]`` (transitions in the range) at ``now_ms``."""
    cut = until_ms - since_ms > MAX_RANGE_MS
    since_ms = until_ms - MAX_RANGE_MS if cut else since_ms
    grain = choose_grain(since_ms, until_ms)
    covered = bucket_start(since_ms, grain)
    # The right-now reads run beside the range's (each reader counts its own items).
    gauge_reader, expiring_reader, range_reader = (store.rollups() for _ in range(3))
    live_read = _BESIDE.submit(store.live_state, now_ms, settings.stuck_after_ms)
    gauge_read = _BESIDE.submit(gauge_reader.open_failures)
    expiring_read = _BESIDE.submit(expiring, expiring_reader, settings, now_ms)
    try:
        buckets = range_reader.buckets(covered, until_ms, grain, name_groups=False)  # no groups shown
    finally:
        # The requests table's answer first: an outage reads as one StoreUnavailable about it.
        live = live_read.result()
        open_failures = gauge_read.result()
        soon = expiring_read.result()
    total = Rollup()
    for rollup in buckets.values():
        total.merge(rollup)
    bucket_ms = chart_bucket_ms(covered, until_ms, grain)
    charted = rollup_frames.chart_buckets(buckets, covered, until_ms, bucket_ms)
    return Overview(
        since_ms=since_ms,
        until_ms=until_ms,
        now_ms=now_ms,
        covered_since_ms=covered,
        grain=grain,
        cut=cut,
        counts={transition: total.counts.get(transition, 0) for transition in Transition},
        live=live,
        open_failures=open_failures,
        expiring=soon,
        throughput=rollup_frames.throughput(charted),
        latency_over_time=rollup_frames.latency_over_time(charted),
        percentiles=rollup_frames.percentiles(total.sketches),
        distribution=rollup_frames.distribution(total.sketches),
        bucket_ms=bucket_ms,
        buckets_read=len(buckets),
        examined=gauge_reader.items_read
        + expiring_reader.items_read
        + range_reader.items_read
        + live.items_read,
        counted=live.items_counted,
    )
