"""A mergeable latency sketch: a log-bucketed histogram with a relative-error guarantee (the DDSketch idea).

A positive value ``x`` falls in bin ``k = ceil(log_gamma(x))``, ``gamma = (1 + a) / (1 - a)``, so bin ``k``
covers ``(gamma^(k-1), gamma^k]``; its representative ``2 gamma^k / (gamma + 1)`` is within a relative
error ``a`` of every value in it. A quantile is the representative of the bin that holds the exact order
statistic of the same rank, so it is within ``a`` (1 % by default) of the exact quantile, however many
values were added and however the sketch was split and merged. Zero and negative values (a clock that
went backwards) go to a zero bin, read back as 0.

Merging adds bin counts, so the sketch of the whole equals the merge of the sketches of its parts exactly;
that is also how the rollups consumer stores it (a DynamoDB ADD per bin, see ``schema``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

RELATIVE_ACCURACY: Final = 0.01
ZERO_KEY: Final = "z"  # the bin of values <= 0 in serialised form


@dataclass
class LatencySketch:
    """Bin counts of values (milliseconds here; the sketch is unit-free). ``bins`` maps key -> count."""

    relative_accuracy: float = RELATIVE_ACCURACY
    bins: dict[int, int] = field(default_factory=dict)
    zero_count: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.relative_accuracy < 1:
            raise ValueError(f"relative accuracy must be between 0 and 1, got {self.relative_accuracy}")

    @property
    def gamma(self) -> float:
        return (1 + self.relative_accuracy) / (1 - self.relative_accuracy)

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.bins.values())

    def key(self, value: float) -> int | None:
        """The bin of ``value`` (None for the zero bin)."""
        if not math.isfinite(value):
            raise ValueError(f"a latency must be a finite number, got {value!r}")
        if value <= 0:
            return None
        return math.ceil(math.log(value) / math.log(self.gamma))

    def representative(self, key: int) -> float:
        return 2 * self.gamma**key / (self.gamma + 1)

    def add(self, value: float, count: int = 1) -> None:
        if count < 0:
            raise ValueError("a sketch cannot remove values")
        key = self.key(value)
        if key is None:
            self.zero_count += count
        else:
            self.bins[key] = self.bins.get(key, 0) + count

    def merge(self, other: LatencySketch) -> None:
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("only sketches of the same accuracy merge")
        self.zero_count += other.zero_count
        for key, count in other.bins.items():
            self.bins[key] = self.bins.get(key, 0) + count

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1): within the relative accuracy of the exact order statistic
        ``sorted(values)[floor(q * (count - 1))]``. None for an empty sketch."""
        if not 0 <= q <= 1:
            raise ValueError(f"a quantile is between 0 and 1, got {q}")
        total = self.count
        if total == 0:
            return None
        rank = math.floor(q * (total - 1))
        seen = self.zero_count
        if rank < seen:
            return 0.0
        for key in sorted(self.bins):
            seen += self.bins[key]
            if rank < seen:
                return self.representative(key)
        raise AssertionError("unreachable: the rank is below the total count")

    # ------------------------------------------------------------------------------- serialisation
    def to_counts(self) -> dict[str, int]:
        """Bin counts keyed by text (``"z"`` for the zero bin), the form stored in a DynamoDB item."""
        counts = {str(key): count for key, count in self.bins.items() if count}
        if self.zero_count:
            counts[ZERO_KEY] = self.zero_count
        return counts

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], relative_accuracy: float = RELATIVE_ACCURACY
    ) -> LatencySketch:
        """The inverse of :meth:`to_counts`; ValueError on a key or count that no sketch writes."""
        sketch = cls(relative_accuracy)
        for raw_key, raw_count in counts.items():
            count = int(raw_count)
            if count < 0:
                raise ValueError(f"bin {raw_key!r} has a negative count {count}")
            if raw_key == ZERO_KEY:
                sketch.zero_count += count
                continue
            try:
                key = int(raw_key)
            except ValueError:
                raise ValueError(f"{raw_key!r} is not a sketch bin") from None
            sketch.bins[key] = sketch.bins.get(key, 0) + count
        return sketch

    @classmethod
    def of(cls, values: Iterable[float], relative_accuracy: float = RELATIVE_ACCURACY) -> LatencySketch:
        sketch = cls(relative_accuracy)
        for value in values:
            sketch.add(value)
        return sketch
