"""Wall-clock time in epoch milliseconds: the one definition the backend's modules share."""

from __future__ import annotations

import time
from typing import Final

HOUR_MS: Final = 3_600_000


def now_ms() -> int:
    """Now, in epoch milliseconds."""
    return time.time_ns() // 1_000_000
