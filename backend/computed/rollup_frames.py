"""The overview's charts and tables from rollups (pure functions, no I/O): rollup buckets merged into chart
buckets, percentiles and a distribution from the merged latency sketches (1 % relative error, see
docs/rollups.md). Latencies are bucketed by finish time, as the rollups store them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import pandas as pd
from streamdesk_rollups.schema import Stage, Transition
from streamdesk_rollups.sketch import LatencySketch

from backend.computed.stats import PERCENTILES, throughput_table
from backend.rollups.model import Rollup

STAGE_NAMES: Final[dict[Stage, str]] = {
    Stage.QUEUE_WAIT: "queue wait",
    Stage.PROCESSING: "processing",
    Stage.END_TO_END: "end to end",
}
PERCENTILE_COLUMNS: Final = ["stage", "p50", "p95", "p99", "count"]
# The distribution chart merges this many neighbouring sketch bins (1 % each) into one bar: about 20 %
# wide, so that a few hundred samples still draw a shape rather than a comb.
DISTRIBUTION_BINS_PER_BAR: Final = 10


def chart_buckets(
    buckets: Mapping[int, Rollup], first_ms: int, until_ms: int, chart_ms: int
) -> dict[int, Rollup]:
    """Every chart bucket start from ``first_ms`` to ``until_ms`` (empty ones included) -> the merge of
    the rollup buckets that start in it."""
    first = first_ms - first_ms % chart_ms
    merged = {start: Rollup() for start in range(first, max(until_ms, first) + 1, chart_ms)}
    for start, rollup in buckets.items():
        slot = start - start % chart_ms
        if slot in merged:
            merged[slot].merge(rollup)
    return merged


def throughput(charted: Mapping[int, Rollup]) -> pd.DataFrame:
    """Per chart bucket: accepted, succeeded and failed transitions, and failure_rate = failed /
    (succeeded + failed), NaN where nothing finished."""
    starts = sorted(charted)
    accepted = np.array([charted[s].counts.get(Transition.ACCEPTED, 0) for s in starts], dtype=np.int64)
    succeeded = np.array([charted[s].counts.get(Transition.SUCCEEDED, 0) for s in starts], dtype=np.int64)
    failed = np.array([charted[s].counts.get(Transition.FAILED, 0) for s in starts], dtype=np.int64)
    return throughput_table(starts, accepted, succeeded, failed)


def _percentile_row(sketch: LatencySketch) -> dict[str, float | int]:
    row: dict[str, float | int] = {}
    for name, q in PERCENTILES:
        value = sketch.quantile(q / 100)
        row[name] = float("nan") if value is None else value
    row["count"] = sketch.count
    return row


def percentiles(sketches: Mapping[Stage, LatencySketch]) -> pd.DataFrame:
    """p50/p95/p99 (the sketch's, within 1 % of the exact order statistic) and count, one row per stage."""
    rows = [{"stage": name, **_percentile_row(sketches[stage])} for stage, name in STAGE_NAMES.items()]
    return pd.DataFrame(rows, columns=PERCENTILE_COLUMNS)


def latency_over_time(charted: Mapping[int, Rollup]) -> pd.DataFrame:
    """Percentiles per stage per chart bucket of finish time (buckets where nothing finished are absent)."""
    rows = []
    for start in sorted(charted):
        sketches = charted[start].sketches
        if not any(sketch.count for sketch in sketches.values()):
            continue
        time = pd.Timestamp(start, unit="ms", tz="UTC")
        for stage, name in STAGE_NAMES.items():
            if sketches[stage].count:
                rows.append({"time": time, "stage": name, **_percentile_row(sketches[stage])})
    return pd.DataFrame(rows, columns=["time", *PERCENTILE_COLUMNS])


def distribution(sketches: Mapping[Stage, LatencySketch]) -> pd.DataFrame:
    """The merged sketches as a histogram: per stage, bars of :data:`DISTRIBUTION_BINS_PER_BAR` sketch bins
    (``ms`` = the bar's lower edge; zero-length spans at 0), with their count and share of the stage."""
    rows = []
    for stage, name in STAGE_NAMES.items():
        sketch = sketches[stage]
        total = sketch.count
        if not total:
            continue
        bars: dict[int, int] = {}
        for key, count in sketch.bins.items():
            bar = key // DISTRIBUTION_BINS_PER_BAR
            bars[bar] = bars.get(bar, 0) + count
        edges = [(0.0, sketch.zero_count)] if sketch.zero_count else []
        edges += [(sketch.gamma ** (bar * DISTRIBUTION_BINS_PER_BAR), bars[bar]) for bar in sorted(bars)]
        rows += [
            {"stage": name, "ms": lower, "count": count, "share": count / total} for lower, count in edges
        ]
    return pd.DataFrame(rows, columns=["stage", "ms", "count", "share"])
