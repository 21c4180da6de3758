"""A rollup as the readers see it: counts per transition, failure groups and latency sketches, mergeable
across buckets and write shards (every part adds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamdesk_rollups.schema import (
    COUNT_PREFIX,
    GROUP_PREFIX,
    PK,
    SEPARATOR,
    SK,
    TTL,
    Stage,
    Transition,
)
from streamdesk_rollups.sketch import ZERO_KEY, LatencySketch


@dataclass
class GroupCount:
    error_type: str
    pattern: str
    count: int = 0


@dataclass
class Rollup:
    counts: dict[Transition, int] = field(default_factory=lambda: dict.fromkeys(Transition, 0))
    groups: dict[str, GroupCount] = field(default_factory=dict)
    sketches: dict[Stage, LatencySketch] = field(default_factory=lambda: {s: LatencySketch() for s in Stage})

    def merge(self, other: Rollup) -> None:
        for transition, count in other.counts.items():
            self.counts[transition] = self.counts.get(transition, 0) + count
        for key, group in other.groups.items():
            mine = self.groups.setdefault(key, GroupCount(group.error_type, group.pattern))
            mine.count += group.count
            mine.error_type = mine.error_type or group.error_type
            mine.pattern = mine.pattern or group.pattern
        for stage, sketch in other.sketches.items():
            self.sketches[stage].merge(sketch)

    @property
    def empty(self) -> bool:
        return (
            not any(self.counts.values())
            and not self.groups
            and not any(s.count for s in self.sketches.values())
        )


_STAGES = {stage.value: stage for stage in Stage}
_TRANSITIONS = {transition.value: transition for transition in Transition}


def rollup_from_item(entry: Mapping[str, Any]) -> Rollup:
    """A rollup item (DynamoDB JSON) as a :class:`Rollup`; ValueError on an attribute no consumer writes."""
    rollup = Rollup()
    add_item(rollup, entry)
    return rollup


def add_item(rollup: Rollup, entry: Mapping[str, Any]) -> None:
    """Add a rollup item (DynamoDB JSON) to ``rollup`` in place: the same as merging
    ``rollup_from_item(entry)``, without building a rollup per item (a busy hour's item holds hundreds of
    bins, and a week reads hundreds of items)."""
    sketches = {prefix: rollup.sketches[stage] for prefix, stage in _STAGES.items()}
    for name, value in entry.items():
        if name in (PK, SK, TTL):
            continue
        prefix, _, suffix = name.partition(SEPARATOR)
        count = int(value["N"])
        if count < 0:
            raise ValueError(f"rollup item {entry.get(PK)}/{entry.get(SK)}: {name} is negative")
        if prefix == COUNT_PREFIX and suffix in _TRANSITIONS:
            transition = _TRANSITIONS[suffix]
            rollup.counts[transition] = rollup.counts.get(transition, 0) + count
        elif prefix == GROUP_PREFIX:
            # The texts live in the group's own item: the reader fills them in.
            group = rollup.groups.setdefault(suffix, GroupCount("", ""))
            group.count += count
        elif prefix in sketches:
            sketch = sketches[prefix]
            if suffix == ZERO_KEY:
                sketch.zero_count += count
            else:
                try:
                    key = int(suffix)
                except ValueError:
                    raise ValueError(f"{suffix!r} is not a sketch bin") from None
                sketch.bins[key] = sketch.bins.get(key, 0) + count
        else:
            raise ValueError(f"rollup item {entry.get(PK)}/{entry.get(SK)}: unknown attribute {name!r}")
