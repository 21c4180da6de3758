"""Benchmark helper: rollup items written directly (BatchWriteItem, in parallel), as the rollups consumer
would have left them after a given traffic, for both grains and every write shard.

- :func:`dense_rollups`: a steady rate (1,000 requests a second is 15,000 per minute and write shard at 4
  shards). Each bucket's latency sketches hold the expected bin counts of log-normal latencies (queue
  wait ~250 ms, processing ~90 ms, end to end ~350 ms), so they use as many bins as that many real
  requests would (a few hundred per stage); failures (5 %) fall into 20 of ``groups`` failure groups per
  minute, a different 20 each minute, so an hour holds up to all of them.
- :func:`sparse_rollups`: ``requests`` requests spread uniformly, each sampled and counted in its minute,
  hour and a random write shard, as the consumer spreads its chunks.

Both write the failure groups' texts (one group item each) and the open-failures gauge.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from streamdesk_rollups.error_groups import group_key, normalise_message
from streamdesk_rollups.schema import (
    GROUP_PREFIX,
    OPEN_FAILURES,
    PK,
    SK,
    TTL,
    Grain,
    Stage,
    Transition,
    bin_attribute,
    count_attribute,
    gauge_pk,
    group_attribute,
    group_text_update,
    rollup_pk,
)
from streamdesk_rollups.sketch import LatencySketch

MINUTE: Final = 60_000
HOUR: Final = 3_600_000
RETENTION_S: Final = 400 * 86_400
# Log-normal latencies (mu, sigma of ln ms) per stage.
LATENCY: Final[dict[Stage, tuple[float, float]]] = {
    Stage.QUEUE_WAIT: (5.5, 0.5),
    Stage.PROCESSING: (4.5, 0.6),
    Stage.END_TO_END: (5.85, 0.45),
}
FAILURE_SHARE: Final = 0.05
RETRY_SHARE: Final = 0.03
GROUPS_PER_MINUTE: Final = 20


@dataclass
class Bucket:
    """One rollup item being built: counters and bins by attribute name."""

    numbers: dict[str, int] = field(default_factory=dict)

    def add(self, attribute: str, amount: int) -> None:
        if amount:
            self.numbers[attribute] = self.numbers.get(attribute, 0) + amount

    def item(self, grain: Grain, start: int, shard: int) -> dict[str, Any]:
        entry: dict[str, Any] = {
            PK: {"S": rollup_pk(grain, start, shard)},
            SK: {"N": str(start)},
            TTL: {"N": str(start // 1000 + RETENTION_S)},
        }
        entry.update({name: {"N": str(value)} for name, value in self.numbers.items()})
        return entry


def group_keys(groups: int) -> list[tuple[str, str, str]]:
    """(key, error type, message) of ``groups`` distinct failure groups."""
    found = []
    for number in range(groups):
        error_type = ("BusinessError", "ValidationError", "TimeoutError")[number % 3]
        message = f"failure kind {number} in step {number % 7}"
        found.append((group_key(error_type, message), error_type, message))
    return found


def _expected_bins(requests: int, stage: Stage) -> dict[str, int]:
    """The expected bin counts of ``requests`` log-normal latencies (bins with at least one)."""
    mu, sigma = LATENCY[stage]
    sketch = LatencySketch()
    log_gamma = math.log(sketch.gamma)
    centre = round(mu / log_gamma)
    counts: dict[str, int] = {}
    for key in range(centre - int(6 * sigma / log_gamma), centre + int(6 * sigma / log_gamma) + 1):
        lo, hi = (key - 1) * log_gamma, key * log_gamma
        share = 0.5 * (
            math.erf((hi - mu) / (sigma * math.sqrt(2))) - math.erf((lo - mu) / (sigma * math.sqrt(2)))
        )
        count = round(requests * share)
        if count:
            counts[bin_attribute(stage, str(key))] = count
    return counts


def _dense_minute(requests: int, minute_number: int, groups: Sequence[tuple[str, str, str]]) -> Bucket:
    bucket = Bucket()
    failed = round(requests * FAILURE_SHARE)
    retried = round(requests * RETRY_SHARE)
    for transition, amount in (
        (Transition.ACCEPTED, requests),
        (Transition.STARTED, requests + retried),
        (Transition.SUCCEEDED, requests - failed),
        (Transition.FAILED, failed),
        (Transition.RETRIED, retried),
        (Transition.REDRIVEN, failed // 50),
        (Transition.EXPIRED, requests - failed),  # steady state: as many successes expire as succeed
    ):
        bucket.add(count_attribute(transition), amount)
    chosen = [groups[(minute_number * 7 + j) % len(groups)] for j in range(GROUPS_PER_MINUTE)]
    for number, (key, _, _) in enumerate(chosen):
        share = failed // GROUPS_PER_MINUTE + (1 if number < failed % GROUPS_PER_MINUTE else 0)
        bucket.add(group_attribute(GROUP_PREFIX, key), share)
    return bucket


def dense_rollups(
    since_ms: int, until_ms: int, rate_per_s: float, shards: int, groups: Sequence[tuple[str, str, str]]
) -> Iterator[dict[str, Any]]:
    """Minute and hour items of a steady ``rate_per_s`` over [since, until] (whole hours)."""
    per_minute = round(rate_per_s * 60 / shards)
    bins: dict[str, int] = {}
    for stage in Stage:
        bins.update(_expected_bins(per_minute, stage))
    first = since_ms - since_ms % HOUR
    for hour in range(first, until_ms + 1, HOUR):
        for shard in range(shards):
            hourly = Bucket()
            for minute in range(hour, hour + HOUR, MINUTE):
                if minute > until_ms:
                    break
                bucket = _dense_minute(per_minute, minute // MINUTE + shard, groups)
                bucket.numbers.update(bins)
                for name, value in bucket.numbers.items():
                    hourly.add(name, value)
                yield bucket.item(Grain.MINUTE, minute, shard)
            yield hourly.item(Grain.HOUR, hour, shard)


def sparse_rollups(
    since_ms: int,
    until_ms: int,
    requests: int,
    shards: int,
    groups: Sequence[tuple[str, str, str]],
    seed: int = 7,
) -> Iterator[dict[str, Any]]:
    """Minute and hour items of ``requests`` requests finishing uniformly over [since, until]."""
    rng = random.Random(seed)
    buckets: dict[tuple[Grain, int, int], Bucket] = {}
    for _ in range(requests):
        at, shard = rng.randint(since_ms, until_ms), rng.randrange(shards)
        failed = rng.random() < FAILURE_SHARE
        retried = rng.random() < RETRY_SHARE
        for grain in Grain:
            bucket = buckets.setdefault((grain, at - at % grain.ms, shard), Bucket())
            bucket.add(count_attribute(Transition.ACCEPTED), 1)
            bucket.add(count_attribute(Transition.STARTED), 1 + retried)
            bucket.add(count_attribute(Transition.RETRIED), int(retried))
            bucket.add(count_attribute(Transition.FAILED if failed else Transition.SUCCEEDED), 1)
            if failed:
                bucket.add(group_attribute(GROUP_PREFIX, groups[rng.randrange(len(groups))][0]), 1)
            for stage, (mu, sigma) in LATENCY.items():
                key = LatencySketch().key(rng.lognormvariate(mu, sigma))
                bucket.add(bin_attribute(stage, str(key)), 1)
    for (grain, start, shard), bucket in buckets.items():
        yield bucket.item(grain, start, shard)


def write(client: Any, table: str, items: Iterator[dict[str, Any]], threads: int = 6) -> int:
    """BatchWriteItem in chunks of 25 from a few threads, retrying what is left unprocessed; returns the
    items written."""

    def chunks() -> Iterator[list[dict[str, Any]]]:
        chunk: list[dict[str, Any]] = []
        for entry in items:
            chunk.append(entry)
            if len(chunk) == 25:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def put(chunk: list[dict[str, Any]]) -> int:
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": entry}} for entry in chunk]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        return len(chunk)

    written = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        window: list[list[dict[str, Any]]] = []
        for chunk in chunks():  # a window at a time: the items are generated, never all held
            window.append(chunk)
            if len(window) == threads * 8:
                written += sum(pool.map(put, window))
                window = []
        written += sum(pool.map(put, window))
    return written


def write_groups_and_gauge(
    client: Any,
    table: str,
    groups: Sequence[tuple[str, str, str]],
    shards: int,
    open_failures: int,
    now_s: int,
) -> None:
    """The groups' texts (as the consumer writes them) and the gauge, split over the shards."""
    for key, error_type, message in groups:
        pattern = normalise_message(message)
        client.update_item(**group_text_update(table, key, error_type, pattern, now_s + RETENTION_S))
    for shard in range(shards):
        share = open_failures // shards + (1 if shard < open_failures % shards else 0)
        client.put_item(
            TableName=table,
            Item={PK: {"S": gauge_pk(shard)}, SK: {"N": "0"}, OPEN_FAILURES: {"N": str(share)}},
        )
