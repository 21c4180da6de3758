"""Changes folded into what one transaction writes: per-bucket deltas, ledger marks and the gauge.

A batch becomes one or more :class:`Chunk` s, each small enough for one TransactWriteItems (at most 100
items; at most ``MAX_TERMS_PER_ITEM`` counters per rollup item so that an update expression stays far
below DynamoDB's 4 KB). Chunks keep the records' order, so applying them one after another applies the
batch in order, and every chunk moves the ledger marks of its own requests only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from streamdesk_rollups.schema import (
    GROUP_PREFIX,
    Grain,
    bin_attribute,
    bucket_start,
    count_attribute,
    group_attribute,
)
from streamdesk_rollups.sketch import LatencySketch
from streamdesk_rollups.transitions import Change

MAX_TRANSACTION_ITEMS: Final = 100  # DynamoDB's limit for TransactWriteItems
MAX_TERMS_PER_ITEM: Final = 200  # ADD terms in one update (about 12 characters each, of 4 KB)


@dataclass
class BucketDelta:
    """What to add to one rollup bucket: counters by attribute name."""

    counters: dict[str, int] = field(default_factory=dict)

    def add(self, attribute: str, amount: int = 1) -> None:
        self.counters[attribute] = self.counters.get(attribute, 0) + amount

    @property
    def terms(self) -> int:
        return len(self.counters)


@dataclass
class Chunk:
    """The changes of one transaction and what they add up to."""

    changes: list[Change] = field(default_factory=list)
    buckets: dict[tuple[Grain, int], BucketDelta] = field(default_factory=dict)
    marks: dict[str, tuple[str, str]] = field(default_factory=dict)  # ledger key -> (first, last) sequence
    # group key -> (error type, pattern): written before the transaction, not in it (see store.apply)
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)
    open_failures: int = 0

    @property
    def items(self) -> int:
        return len(self.buckets) + len(self.marks) + (1 if self.open_failures else 0)

    def fits(self) -> bool:
        """Within the transaction limits (the gauge counts even at 0: a later change may need it)."""
        widest = max((delta.terms for delta in self.buckets.values()), default=0)
        items = len(self.buckets) + len(self.marks) + 1
        return items <= MAX_TRANSACTION_ITEMS and widest <= MAX_TERMS_PER_ITEM


def chunk(changes: Iterable[Change]) -> Iterator[Chunk]:
    """The changes (already free of duplicates, in stream order) in transaction-sized chunks."""
    current = Chunk()
    for change in changes:
        candidate = _with(current, change)
        if not candidate.fits() and current.changes:
            yield current
            candidate = _with(Chunk(), change)
        if not candidate.fits():
            raise ValueError(f"one record's change does not fit in a transaction: {change}")
        current = candidate
    if current.changes:
        yield current


def _with(base: Chunk, change: Change) -> Chunk:
    """A copy of ``base`` with ``change`` added (copied so that a chunk that overflows stays intact)."""
    result = Chunk(
        changes=[*base.changes, change],
        buckets={key: BucketDelta(dict(d.counters)) for key, d in base.buckets.items()},
        marks=dict(base.marks),
        groups=dict(base.groups),
        open_failures=base.open_failures + change.open_failures,
    )
    first = result.marks.get(change.ledger_key, (change.sequence, change.sequence))[0]
    result.marks[change.ledger_key] = (first, change.sequence)
    for grain in Grain:
        _add_change(result, change, grain)
    return result


def _add_change(result: Chunk, change: Change, grain: Grain) -> None:
    for transition, at in change.transitions:
        _bucket(result, grain, at).add(count_attribute(transition))
    if change.finished_at is None:
        return
    finished = _bucket(result, grain, change.finished_at)
    for stage, value in change.latencies:
        sketch = LatencySketch.of([value])
        for key, count in sketch.to_counts().items():
            finished.add(bin_attribute(stage, key), count)
    group = change.error_group
    if group is not None:
        finished.add(group_attribute(GROUP_PREFIX, group.key))
        result.groups[group.key] = (group.error_type, group.pattern)


def _bucket(result: Chunk, grain: Grain, at_ms: int) -> BucketDelta:
    key = (grain, bucket_start(at_ms, grain))
    delta = result.buckets.get(key)
    if delta is None:
        delta = result.buckets[key] = BucketDelta()
    return delta
