"""A time range's total from the rollups at the coarsest grain that keeps it exact to the minute: minute
buckets up to the first whole hour, hour buckets from there (a week is 168 hour buckets per write shard, not
10,080 minutes). What it costs follows the number of buckets, never the number of requests."""

from __future__ import annotations

from typing import Final

from streamdesk_rollups.schema import MS_PER_HOUR, MS_PER_MINUTE, Grain

from backend.rollups.model import Rollup
from backend.rollups.reader import RollupReader

MINUTES_UP_TO: Final = 6 * MS_PER_HOUR  # ranges this short are read in minutes only


def range_total(reader: RollupReader, since_ms: int, until_ms: int) -> Rollup:
    """Everything counted in the minutes from ``since_ms`` (its minute included) to ``until_ms``."""
    if until_ms < since_ms:
        raise ValueError(f"the range ends ({until_ms}) before it starts ({since_ms})")
    if until_ms - since_ms <= MINUTES_UP_TO:
        return reader.total(since_ms, until_ms, Grain.MINUTE)
    first_hour = -(-since_ms // MS_PER_HOUR) * MS_PER_HOUR  # the first whole hour in the range
    total = Rollup()
    if first_hour > since_ms:
        total.merge(reader.total(since_ms, first_hour - MS_PER_MINUTE, Grain.MINUTE))
    total.merge(reader.total(first_hour, until_ms, Grain.HOUR))
    return total
