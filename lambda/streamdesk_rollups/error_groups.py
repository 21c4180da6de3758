"""The failure grouping key: error type plus the message with its variable parts folded.

The one definition: the rollups consumer counts failure groups by it, and the dashboard's failures page
(``backend/computed/failures.py``) groups by it, so a group's key is the same in both.
"""

from __future__ import annotations

import hashlib
import re

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
NO_ERROR_TYPE = "(no error recorded)"


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
