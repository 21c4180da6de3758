"""What the local trigger reports, for the dashboard: its state file and its on-failure destination.

Light imports only (no boto3): the dashboard reads these files on every refresh. The files and their
shapes are described in docs/internal-contracts.md ("Trigger twin files").

State fields of note: ``iteratorAgeMs`` is the age of the last record of the latest batch when it was
delivered (AWS's IteratorAge); ``functionErrors`` counts invocations that raised (or returned an invalid
batch response); ``perMinute[].errors`` counts batches whose result was not OK (function errors and
partial batch failures).
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from backend.settings import Settings

# The trigger rewrites its state at least once a second; older than this, it is not running.
STALE_AFTER_MS = 5_000


def read_trigger_state(settings: Settings) -> dict[str, Any] | None:
    """The trigger's latest state, or None if it never ran here (or the file cannot be read).

    Adds ``"alive"``: True when the heartbeat is recent and the trigger did not report it stopped.
    """
    path = settings.trigger_state_path
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    heartbeat = state.get("heartbeatAt")
    fresh = isinstance(heartbeat, int | float) and time.time() * 1000 - heartbeat < STALE_AFTER_MS
    state["alive"] = bool(fresh and state.get("state") == "Enabled")
    return state


def read_failure_destination(settings: Settings, limit: int = 100) -> list[dict[str, Any]]:
    """The last ``limit`` messages of the on-failure destination, newest first."""
    path = settings.failure_destination_path
    lines: deque[str] = deque(maxlen=max(0, limit))
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    lines.append(line)
    except OSError:
        return []
    messages: list[dict[str, Any]] = []
    for line in reversed(lines):
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash of the machine; the others are intact
        if isinstance(message, dict):
            messages.append(message)
    return messages
