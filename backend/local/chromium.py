"""How this project starts Debian's Chromium headless (the browser tests and the browser benchmark).

Playwright cannot download its own browser here, so it drives the distribution's build. The flags keep it
from reaching out to Google's services, which this machine's closed network refuses many at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

CHROMIUM: Final = Path("/usr/bin/chromium")  # Debian's package `chromium` (scripts/ensure-tools.sh)
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
