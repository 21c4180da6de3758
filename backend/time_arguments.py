"""Points in time as people type them on the command line: ``2026-12-04T19:00`` (ISO 8601; without an
offset it is UTC), ``2026-12-04`` (midnight UTC), ``now``, or a span back from now (``15m``, ``2h``,
``7d``, ``90s``; also ``-2h``, which argparse takes only as ``--since=-2h``). Parsed to epoch
milliseconds; ValueError with a message a person can act on."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

_SPAN: Final = re.compile(r"^-?(\d+)([smhd])(?: ago)?$")
_UNIT_MS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
FORMATS: Final = "an ISO time (2026-12-04T19:00, UTC unless it has an offset), 'now', or 15m / 2h / 7d ago"


def parse_time(text: str, now_ms: int) -> int:
    """``text`` as epoch milliseconds (``now_ms`` for ``now`` and spans back from it)."""
    value = text.strip()
    if value.lower() == "now":
        return now_ms
    span = _SPAN.match(value)
    if span:
        return now_ms - int(span.group(1)) * _UNIT_MS[span.group(2)]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use {FORMATS}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def fmt_utc(epoch_ms: int) -> str:
    """An epoch-ms time as ``2026-12-04 19:00:00Z``."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
