"""Size bounds on what the processor writes, so that no business logic can push an item towards
DynamoDB's 400 KB limit (limits live in item.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streamdesk_processor import item

ELLIPSIS = "…"
# A result key is a short label; a longer one is cut like a value.
MAX_RESULT_KEY_CHARS = 100


def head(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, keeping the start (messages: the first words matter)."""
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)] + ELLIPSIS


def tail(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, keeping the end (tracebacks: the raising frame is last)."""
    if len(text) <= limit:
        return text
    return ELLIPSIS + text[len(text) - limit + len(ELLIPSIS) :]


def as_text(value: Any) -> str:
    """A summary value as a string: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def bounded_summary(values: Mapping[Any, Any]) -> dict[str, str]:
    """A summary as the item stores it: a map of strings, at most ``MAX_RESULT_KEYS`` keys of bounded size.

    Keys beyond the limit are dropped (the first ones, in the order given, are kept); empty keys are
    dropped because DynamoDB rejects them.
    """
    summary: dict[str, str] = {}
    for key, value in values.items():
        name = head(str(key), MAX_RESULT_KEY_CHARS)
        if not name:
            continue
        if name not in summary and len(summary) >= item.MAX_RESULT_KEYS:
            continue
        summary[name] = head(as_text(value), item.MAX_RESULT_VALUE_CHARS)
    return summary
