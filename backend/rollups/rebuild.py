"""Recount the rollups of a time range from the request items, and say how far the stored ones differ.

For a range whose rollups are missing (data that predates them, a batch the consumer gave up on) or
suspect (after a bug). What items can tell is less than what the stream told: an item shows its latest
state only, so the recount covers

- accepted (by ``createdAt``), succeeded and failed (by ``finishedAt``, the item's current outcome),
  failure groups of the FAILED items, and the latency sketches of finished items (their latest attempt);
- cancelled (CANCELLED items, by ``finishedAt``) and resolved (RESOLVED items, by ``resolution.at``);
- not started / retried / redriven / expired / reopened, nor earlier failures of a request redriven since,
  nor earlier resolutions of a failure reopened since (the stored counts are higher there by design), nor
  items TTL has deleted (outside the requests' retention the recount is lower by design).

So a stored count *below* the recount is data missing from the rollups, and ``apply=True`` adds exactly
that gap (to write shard 0: rollups add up, so a correction commutes with the live consumer's updates).
A stored count above the recount is reported and never lowered. Run it on closed ranges (older than the
consumer's lag), or a correction can race with records still in flight and count them twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from streamdesk_processor import item
from streamdesk_processor.item import Status
from streamdesk_rollups.deltas import BucketDelta
from streamdesk_rollups.schema import (
    GROUP_PREFIX,
    PK,
    SK,
    TTL,
    Grain,
    Stage,
    Transition,
    bin_attribute,
    bucket_start,
    count_attribute,
    group_attribute,
    group_text_update,
    rollup_pk,
)
from streamdesk_rollups.transitions import error_group, latencies, resolved_at

from backend.rollups.model import GroupCount, Rollup
from backend.rollups.reader import RollupReader

RECOUNTED: Final = (
    Transition.ACCEPTED,
    Transition.SUCCEEDED,
    Transition.FAILED,
    Transition.CANCELLED,
    Transition.RESOLVED,
)
# A closed request's state and the transition that closed it (counted at its finish or its resolution).
CLOSED: Final = {Status.CANCELLED: Transition.CANCELLED, Status.RESOLVED: Transition.RESOLVED}
CORRECTION_SHARD: Final = 0
QUANTILES: Final = (0.5, 0.95, 0.99)
_PROJECTION: Final = (
    item.ID, item.STATUS, item.CREATED_AT, item.STARTED_AT, item.FINISHED_AT, item.REDRIVEN_AT, item.ERROR,
    item.RESOLUTION,
)  # fmt: skip


@dataclass(frozen=True)
class Difference:
    """One figure of one bucket: what the rollups hold and what the items say."""

    grain: Grain
    bucket_ms: int
    figure: str  # "accepted", "group <key>", "samples <stage>", ...
    stored: int
    recounted: int

    @property
    def missing(self) -> int:
        """How many the rollups lack (0 when they hold as many or more)."""
        return max(0, self.recounted - self.stored)


@dataclass
class RebuildReport:
    since_ms: int
    until_ms: int
    items_read: int = 0
    buckets_compared: int = 0
    differences: list[Difference] = field(default_factory=list)
    # Buckets the items have figures for and the rollups hold nothing of (a lost batch, older data).
    missing_buckets: list[tuple[Grain, int]] = field(default_factory=list)
    # What adding the gaps writes (``apply``) or would write: bucket updates, and figure -> amount added.
    correction_buckets: int = 0
    corrections: dict[str, int] = field(default_factory=dict)
    corrections_written: int = 0

    @property
    def missing(self) -> int:
        return sum(d.missing for d in self.differences)

    @property
    def below(self) -> list[Difference]:
        """Figures the rollups hold fewer of than the items show: data missing (``apply`` adds them)."""
        return [d for d in self.differences if d.missing]

    @property
    def above(self) -> list[Difference]:
        """Figures the rollups hold more of than the items show (history the items no longer tell)."""
        return [d for d in self.differences if d.stored > d.recounted]


def recount(
    images: Iterable[Mapping[str, Any]], since_ms: int, until_ms: int, grain: Grain
) -> dict[int, Rollup]:
    """Bucket start -> the rollup the items support (see the module docstring), for [since, until]."""
    buckets: dict[int, Rollup] = {}

    def bucket(at: int | None) -> Rollup | None:
        if at is None or not since_ms <= at <= until_ms:
            return None
        return buckets.setdefault(bucket_start(at, grain), Rollup())

    for image in images:
        accepted = bucket(_n(image, item.CREATED_AT))
        if accepted is not None:
            accepted.counts[Transition.ACCEPTED] += 1
        status = (image.get(item.STATUS) or {}).get("S")
        if status == Status.CANCELLED or status == Status.RESOLVED:
            at = _n(image, item.FINISHED_AT) if status == Status.CANCELLED else resolved_at(image)
            closed = bucket(at)
            if closed is not None:
                closed.counts[CLOSED[status]] += 1
        ended = status == Status.SUCCEEDED or status in item.FAILED_OUTCOMES
        finished = bucket(_n(image, item.FINISHED_AT)) if ended else None
        if finished is None:
            continue
        finished.counts[Transition.SUCCEEDED if status == Status.SUCCEEDED else Transition.FAILED] += 1
        for stage, value in latencies(image):
            finished.sketches[stage].add(value)
        if status in item.FAILED_OUTCOMES:  # a resolved failure was counted when it failed
            group = error_group(image)
            finished.groups.setdefault(group.key, GroupCount(group.error_type, group.pattern)).count += 1
    return dict(sorted(buckets.items()))


def compare(stored: Mapping[int, Rollup], recounted: Mapping[int, Rollup], grain: Grain) -> list[Difference]:
    """Every figure the recount covers that differs, bucket by bucket."""
    found: list[Difference] = []
    for start in sorted(set(stored) | set(recounted)):
        have, want = stored.get(start, Rollup()), recounted.get(start, Rollup())
        figures: list[tuple[str, int, int]] = [(t.value, have.counts[t], want.counts[t]) for t in RECOUNTED]
        for key in sorted(set(have.groups) | set(want.groups)):
            figures.append((f"group {key}", _group_count(have, key), _group_count(want, key)))
        for stage in Stage:
            figures.append((f"samples {stage.value}", have.sketches[stage].count, want.sketches[stage].count))
        found += [Difference(grain, start, name, a, b) for name, a, b in figures if a != b]
    return found


def rebuild(
    client: Any,
    requests_table: str,
    rollups_table: str,
    write_shards: int,
    since_ms: int,
    until_ms: int,
    *,
    apply: bool = False,
    retention_seconds: int = 400 * 86_400,
) -> RebuildReport:
    """Recount [since, until] from the items (one filtered Scan), compare with the stored rollups of both
    grains, and with ``apply`` add what is missing. Returns what differed."""
    if until_ms < since_ms:
        raise ValueError(f"the range ends ({until_ms}) before it starts ({since_ms})")
    report = RebuildReport(since_ms, until_ms)
    images = list(_scan(client, requests_table, since_ms, until_ms, report))
    reader = RollupReader(client, rollups_table, write_shards)
    for grain in Grain:
        first = bucket_start(since_ms, grain)
        recounted = recount(images, first, until_ms, grain)
        stored = reader.buckets(first, until_ms, grain)
        report.buckets_compared += len(set(stored) | set(recounted))
        report.missing_buckets += [(grain, start) for start in sorted(set(recounted) - set(stored))]
        differences = compare(stored, recounted, grain)
        report.differences += differences
        plan = _corrections(differences, stored, recounted)
        report.correction_buckets += len(plan.buckets)
        for figure, amount in plan.added.items():
            report.corrections[f"{figure} ({grain.name.lower()})"] = amount
        if apply:
            _write(client, rollups_table, plan, retention_seconds)
            report.corrections_written += len(plan.buckets)
    return report


@dataclass
class _Corrections:
    """What adding the gaps writes: a delta per bucket, and the texts of the failure groups it adds."""

    buckets: dict[tuple[Grain, int], BucketDelta] = field(default_factory=dict)
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)  # figure kind -> how many are added


def _corrections(
    differences: list[Difference], stored: Mapping[int, Rollup], recounted: Mapping[int, Rollup]
) -> _Corrections:
    """Each missing gap, to add to shard 0 of its bucket."""
    plan = _Corrections()
    for difference in differences:
        if not difference.missing:
            continue
        delta = plan.buckets.setdefault((difference.grain, difference.bucket_ms), BucketDelta())
        want = recounted.get(difference.bucket_ms, Rollup())
        kind, _, name = difference.figure.partition(" ")
        if kind == "group":
            group = want.groups[name]
            delta.add(group_attribute(GROUP_PREFIX, name), difference.missing)
            plan.groups[name] = (group.error_type, group.pattern)
        elif kind == "samples":
            # Bins cannot be told apart once merged: only a sketch that is wholly missing is filled in.
            stage = Stage(name)
            if stored.get(difference.bucket_ms, Rollup()).sketches[stage].count != 0:
                continue
            for key, count in want.sketches[stage].to_counts().items():
                delta.add(bin_attribute(stage, key), count)
        else:
            delta.add(count_attribute(Transition(kind)), difference.missing)
        figure = (
            "latency samples" if kind == "samples" else "failure-group counts" if kind == "group" else kind
        )
        plan.added[figure] = plan.added.get(figure, 0) + difference.missing
    plan.buckets = {key: delta for key, delta in plan.buckets.items() if delta.counters}
    return plan


def _write(client: Any, table: str, plan: _Corrections, retention_seconds: int) -> None:
    """One UpdateItem per bucket, and one per added failure group's texts."""
    now_s = int(time.time())
    for key, (error_type, pattern) in plan.groups.items():
        client.update_item(**group_text_update(table, key, error_type, pattern, now_s + retention_seconds))
    for (grain, start), delta in plan.buckets.items():
        _add(client, table, grain, start, delta, start // 1000 + retention_seconds)


def _add(client: Any, table: str, grain: Grain, start: int, delta: BucketDelta, ttl: int) -> None:
    names, values = {"#ttl": TTL}, {":ttl": {"N": str(ttl)}}
    adds = []
    for number, (attribute, amount) in enumerate(sorted(delta.counters.items())):
        names[f"#a{number}"], values[f":a{number}"] = attribute, {"N": str(amount)}
        adds.append(f"#a{number} :a{number}")
    client.update_item(
        TableName=table,
        Key={PK: {"S": rollup_pk(grain, start, CORRECTION_SHARD)}, SK: {"N": str(start)}},
        UpdateExpression="SET #ttl = :ttl ADD " + ", ".join(adds),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def _scan(
    client: Any, table: str, since_ms: int, until_ms: int, report: RebuildReport
) -> Iterator[dict[str, Any]]:
    """Items created or finished in the range (a filtered Scan: a rebuild is rare and reads the table)."""
    names = {f"#p{i}": name for i, name in enumerate(_PROJECTION)}
    by_name = {name: placeholder for placeholder, name in names.items()}
    created, finished = by_name[item.CREATED_AT], by_name[item.FINISHED_AT]
    resolved = f"{by_name[item.RESOLUTION]}.#resolvedAt"
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": ", ".join(names),
        "FilterExpression": " OR ".join(
            f"{when} BETWEEN :since AND :until" for when in (created, finished, resolved)
        ),
        "ExpressionAttributeNames": {**names, "#resolvedAt": item.RESOLUTION_AT},
        "ExpressionAttributeValues": {":since": {"N": str(since_ms)}, ":until": {"N": str(until_ms)}},
        "ConsistentRead": True,
    }
    while True:
        page = client.scan(**kwargs)
        report.items_read += int(page.get("ScannedCount", 0))
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _group_count(rollup: Rollup, key: str) -> int:
    group = rollup.groups.get(key)
    return group.count if group else 0


def _n(image: Mapping[str, Any], name: str) -> int | None:
    raw = (image.get(name) or {}).get("N")
    return int(float(raw)) if raw is not None else None
