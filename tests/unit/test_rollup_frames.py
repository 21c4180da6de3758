"""The overview's frames from rollups: chart buckets merge rollup buckets exactly, percentiles are the
merged sketch's, the distribution accounts for every sample."""

from __future__ import annotations

import math

from streamdesk_rollups.schema import Grain, Stage, Transition
from streamdesk_rollups.sketch import LatencySketch

from backend.computed import rollup_frames
from backend.computed.overview import MINUTE_GRAIN_MAX_MS, chart_bucket_ms, choose_grain
from backend.rollups.model import Rollup

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def _rollup(accepted: int, succeeded: int, failed: int, latencies: list[float]) -> Rollup:
    rollup = Rollup()
    rollup.counts[Transition.ACCEPTED] = accepted
    rollup.counts[Transition.SUCCEEDED] = succeeded
    rollup.counts[Transition.FAILED] = failed
    for stage in Stage:
        rollup.sketches[stage] = LatencySketch.of(latencies)
    return rollup


def test_chart_buckets_merge_the_rollup_buckets_and_keep_empty_ones() -> None:
    start = 10 * HOUR
    buckets = {start + MINUTE * n: _rollup(1, 1, n % 2, [100.0 + n]) for n in range(10)}
    charted = rollup_frames.chart_buckets(buckets, start, start + 30 * MINUTE - 1, 5 * MINUTE)
    assert sorted(charted) == [start + 5 * MINUTE * n for n in range(6)]
    frame = rollup_frames.throughput(charted)
    assert frame["accepted"].tolist() == [5, 5, 0, 0, 0, 0]
    assert frame["failed"].tolist() == [2, 3, 0, 0, 0, 0]
    assert frame["failure_rate"].iloc[0] == 2 / 7 and math.isnan(frame["failure_rate"].iloc[2])
    over_time = rollup_frames.latency_over_time(charted)
    assert {int(t.timestamp() * 1000) for t in over_time["time"]} == {start, start + 5 * MINUTE}


def test_percentiles_and_distribution_are_the_merged_sketch() -> None:
    values = [float(v) for v in range(1, 1001)]
    total = Rollup()
    total.merge(_rollup(1, 1, 0, values[:500]))
    total.merge(_rollup(1, 1, 0, [*values[500:], 0.0]))
    table = rollup_frames.percentiles(total.sketches).set_index("stage")
    whole = LatencySketch.of([*values, 0.0])
    assert table.loc["queue wait", "p99"] == whole.quantile(0.99)
    assert table.loc["end to end", "count"] == 1001
    assert abs(table.loc["processing", "p50"] - 500) <= 5  # within 1 %
    distribution = rollup_frames.distribution(total.sketches)
    per_stage = distribution.groupby("stage")
    assert per_stage["count"].sum().to_dict() == {"queue wait": 1001, "processing": 1001, "end to end": 1001}
    assert all(abs(share - 1) < 1e-9 for share in per_stage["share"].sum())
    assert distribution["ms"].min() == 0.0  # the zero bin
    assert rollup_frames.distribution(Rollup().sketches).empty


def test_the_grain_and_the_chart_width() -> None:
    assert choose_grain(0, MINUTE_GRAIN_MAX_MS) is Grain.MINUTE
    assert choose_grain(0, MINUTE_GRAIN_MAX_MS + 1) is Grain.HOUR
    assert chart_bucket_ms(0, 15 * MINUTE, Grain.MINUTE) == MINUTE  # never finer than a rollup bucket
    assert chart_bucket_ms(0, DAY, Grain.HOUR) == HOUR
    assert chart_bucket_ms(0, 30 * DAY, Grain.HOUR) == DAY
