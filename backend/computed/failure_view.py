"""The failures page's groups: what is open now (a bounded list, to act on) next to how often each group
failed over a time range (the rollups, whatever the traffic).

- **Open now**: the newest :data:`OPEN_LISTED` FAILED requests from the ``byState`` index, grouped by
  cause (:func:`backend.computed.failures.group_failures`): samples, steps, first/last seen, and the ids a
  retry or a resolution acts on. Past that many, a group's "open now" counts the listed ones only (the
  page says so); the total of open failures is exact anyway, from the rollups' gauge.
- **Failed in the range**: per group, from the rollups' ``g:`` counters (every failure counted when it
  happened, a redriven one included; a resolution does not take it back), with texts from the group items.

Why not a maintained per-group open gauge: the consumer does know the group of every failure it enters and
leaves, but a gauge per group is an attribute per group ever seen that never expires (no shard can drop it
when the sum over shards returns to zero), so the gauge items would grow towards DynamoDB's 400 KB limit
over the years; the bounded list is exact up to :data:`OPEN_LISTED` open failures, which is where support
works anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from streamdesk_processor.item import Status
from streamdesk_rollups.schema import Transition

from backend.computed.failures import FailureGroup, group_failures
from backend.rollups.ranges import range_total
from backend.rollups.reader import RollupReader
from backend.store.calls import StoreUnavailable
from backend.store.reader import RequestStore

OPEN_LISTED: Final = 500  # open failures listed (read from the state index, newest first)


@dataclass(frozen=True)
class GroupRow:
    """One failure group on the page: open now (from the list) and failed in the range (rollups)."""

    key: str
    error_type: str
    pattern: str
    open_now: int
    failed_in_range: int | None  # None: the rollups could not be read
    open: FailureGroup | None  # the listed open failures of this group (None: none open)


@dataclass(frozen=True)
class FailuresView:
    since_ms: int
    until_ms: int
    groups: list[GroupRow]
    listed: int  # open failures listed
    more_open: bool  # the list stops at OPEN_LISTED: there are more open failures
    open_total: int | None  # the rollups' gauge (exact); None when unreadable
    failed_in_range: int | None
    resolved_in_range: int | None
    reopened_in_range: int | None
    counts_error: str | None = None  # why the rollups could not be read

    @property
    def open_rows(self) -> list[GroupRow]:
        return [row for row in self.groups if row.open is not None]


def load_failures_view(
    store: RequestStore, reader: RollupReader, since_ms: int, until_ms: int, limit: int = OPEN_LISTED
) -> FailuresView:
    """The open failures (StoreUnavailable when the requests table cannot be read) and the range's
    counts (what the rollups cannot tell is None, with the reason in ``counts_error``)."""
    listed, more = store.newest_open([Status.FAILED], limit)
    open_groups = group_failures(listed)
    counts_error: str | None = None
    by_group: dict[str, tuple[str, str, int]] = {}
    totals: dict[Transition, int] | None = None
    gauge: int | None = None
    try:
        total = range_total(reader, since_ms, until_ms)
        totals = total.counts
        by_group = {key: (g.error_type, g.pattern, g.count) for key, g in total.groups.items()}
        gauge = reader.open_failures()
    except StoreUnavailable as error:
        counts_error = str(error)
    rows = [
        GroupRow(
            g.key,
            g.error_type,
            g.pattern,
            g.count,
            by_group.get(g.key, ("", "", 0))[2] if totals is not None else None,
            g,
        )
        for g in open_groups
    ]
    opened = {g.key for g in open_groups}
    rows += [
        GroupRow(key, error_type, pattern, 0, count, None)
        for key, (error_type, pattern, count) in by_group.items()
        if key not in opened and count
    ]
    rows.sort(key=lambda r: (-r.open_now, -(r.failed_in_range or 0), r.key))
    return FailuresView(
        since_ms=since_ms,
        until_ms=until_ms,
        groups=rows,
        listed=len(listed),
        more_open=more,
        open_total=gauge,
        failed_in_range=totals[Transition.FAILED] if totals is not None else None,
        resolved_in_range=totals[Transition.RESOLVED] if totals is not None else None,
        reopened_in_range=totals[Transition.REOPENED] if totals is not None else None,
        counts_error=counts_error,
    )
