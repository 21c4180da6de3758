"""Failures grouped by cause: error type plus the message with its variable parts folded.

"card declined for order 4711 at 2026-11-27T07:14:37Z" and "card declined for order 815 at ..." are one
cause; support staff want one row for it, with how often, since when, and samples to open.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from backend.store.models import RequestSummary

# Order matters: the most specific shapes first, so that a UUID is not folded as three numbers.
_FOLDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(\.\d+)?\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"(?<![A-Za-z])-?\d+(\.\d+)?(?![A-Za-z])"), "<n>"),
    (re.compile(r"'[^']{1,200}'"), "'<s>'"),
    (re.compile(r'"[^"]{1,200}"'), '"<s>"'),
    (re.compile(r"\s+"), " "),
)
MAX_PATTERN_CHARS = 300


def normalise_message(message: str | None) -> str:
    """The message with ids, numbers, timestamps and quoted values folded into placeholders."""
    text = (message or "").strip()
    for pattern, placeholder in _FOLDS:
        text = pattern.sub(placeholder, text)
    return text[:MAX_PATTERN_CHARS] or "(no message)"


def group_key(error_type: str | None, message: str | None) -> str:
    """A short, stable key for a cause (used in URLs and by ``streamdesk retry --error-group``)."""
    digest = hashlib.sha1(f"{error_type or ''}\n{normalise_message(message)}".encode()).hexdigest()
    return digest[:12]


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
        error_type = item.error_type or "(no error recorded)"
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
