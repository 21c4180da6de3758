"""Failures grouped by cause: error type plus the message with its variable parts folded.

"card declined for order 4711 at 2026-11-27T07:14:37Z" and "card declined for order 815 at ..." are one
cause; support staff want one row for it, with how often, since when, and samples to open.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# One rule for the failures page and the rollups consumer that counts failure groups (it ships without
# the backend, so the rule lives in its package).
from streamdesk_rollups.error_groups import NO_ERROR_TYPE, group_key, normalise_message

from backend.store.models import RequestSummary

__all__ = ["FailureGroup", "group_failures", "group_key", "normalise_message"]


@dataclass
class FailureGroup:
    """One cause of failure and the failed requests it covers."""

    key: str
    error_type: str
    pattern: str
    count: int = 0
    first_seen: int | None = None  # epoch ms (finishedAt, else createdAt)
    last_seen: int | None = None
    steps: dict[str, int] = field(default_factory=dict)  # failed step -> requests
    request_ids: list[str] = field(default_factory=list)  # newest first

    def samples(self, limit: int = 5) -> list[str]:
        return self.request_ids[:limit]


def group_failures(failed: Iterable[RequestSummary]) -> list[FailureGroup]:
    """Group failed requests by cause; the largest group first, then the most recent."""
    groups: dict[str, FailureGroup] = {}
    ordered = sorted(failed, key=lambda s: s.finished_at or s.created_at or 0, reverse=True)
    for item in ordered:
        error_type = item.error_type or NO_ERROR_TYPE
        key = group_key(item.error_type, item.error_message)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(key, error_type, normalise_message(item.error_message))
        seen = item.finished_at or item.created_at
        group.count += 1
        group.request_ids.append(item.id)
        if seen is not None:
            group.first_seen = seen if group.first_seen is None else min(group.first_seen, seen)
            group.last_seen = seen if group.last_seen is None else max(group.last_seen, seen)
        step = item.error_step or "(unknown step)"
        group.steps[step] = group.steps.get(step, 0) + 1
    return sorted(groups.values(), key=lambda g: (-g.count, -(g.last_seen or 0)))
