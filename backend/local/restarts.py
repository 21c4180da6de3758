"""How the supervisor restarts what died: the words for a death, the backoff, when to give up, and the
state file the dashboard reads (``<data dir>/stack/restarts.json``, typed in backend/stack_restarts.py).

A component that dies is restarted after a backoff that doubles with each death in the crash window
(0.5 s, 1 s, 2 s ... at most ``MAX_DELAY_SECONDS``). ``GIVE_UP_AFTER`` deaths within ``WINDOW_SECONDS``
is a crash loop that restarting will not fix: the supervisor stops the stack and says why.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from backend.local.checkpoint import atomic_write_json
from backend.stack_restarts import ComponentRestarts, ComponentState, StackRestarts

FIRST_DELAY_SECONDS: Final = 0.5
MAX_DELAY_SECONDS: Final = 8.0
WINDOW_SECONDS: Final = 60.0
GIVE_UP_AFTER: Final = 5

# The states are defined once, with the file's shape, in backend/stack_restarts.py.
RUNNING: Final = ComponentState.RUNNING
RESTARTING: Final = ComponentState.RESTARTING
GAVE_UP: Final = ComponentState.GAVE_UP
STOPPED: Final = ComponentState.STOPPED


def describe_exit(returncode: int) -> str:
    """A process's end in words: ``killed by SIGKILL`` for -9 (Popen's negative codes are signals)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


@dataclass
class ComponentRecord:
    """What the supervisor remembers about one component's deaths and restarts."""

    restarts: int = 0
    state: ComponentState = RUNNING
    pid: int | None = None
    last_exit: str | None = None
    last_exit_at: int | None = None  # epoch ms
    last_restart_at: int | None = None  # epoch ms
    deaths: deque[float] = field(default_factory=deque)  # monotonic times within the window

    def typed(self, name: str) -> ComponentRestarts:
        """The component as the state file shows it."""
        return ComponentRestarts(
            name=name,
            state=self.state,
            restarts=self.restarts,
            pid=self.pid,
            last_exit=self.last_exit,
            last_exit_at=self.last_exit_at,
            last_restart_at=self.last_restart_at,
            deaths_in_window=len(self.deaths),
        )


@dataclass(frozen=True)
class Verdict:
    """What to do about a death: restart after ``delay`` seconds, or give up (``reason`` says why)."""

    restart: bool
    delay: float
    reason: str


class RestartPolicy:
    """Backoff and crash-loop detection per component, with the state file kept up to date."""

    def __init__(
        self,
        state_path: Path,
        names: list[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        window_seconds: float = WINDOW_SECONDS,
        give_up_after: int = GIVE_UP_AFTER,
    ) -> None:
        self.state_path = state_path
        self.records = {name: ComponentRecord() for name in names}
        self._clock = clock
        self._wall_ms = wall_ms
        self._window = window_seconds
        self._give_up_after = give_up_after
        self._started_at = wall_ms()
        self.stopped_because: str | None = None

    def started(self, name: str, pid: int | None) -> None:
        record = self.records[name]
        record.pid = pid
        record.state = RUNNING
        self.write()

    def died(self, name: str, returncode: int) -> Verdict:
        """Record a death and decide: restart after a backoff, or give up on a crash loop."""
        record = self.records[name]
        now = self._clock()
        record.deaths.append(now)
        while record.deaths and now - record.deaths[0] > self._window:
            record.deaths.popleft()
        record.last_exit = describe_exit(returncode)
        record.last_exit_at = self._wall_ms()
        record.pid = None
        count = len(record.deaths)
        if count >= self._give_up_after:
            record.state = GAVE_UP
            self.stopped_because = (
                f"{name} died {count} times within {self._window:.0f} s (last: {record.last_exit}); "
                "restarting it again would not help"
            )
            self.write()
            return Verdict(False, 0.0, self.stopped_because)
        record.state = RESTARTING
        self.write()
        delay = min(FIRST_DELAY_SECONDS * 2 ** (count - 1), MAX_DELAY_SECONDS)
        return Verdict(
            True, delay, f"death {count} of {self._give_up_after} allowed within {self._window:.0f} s"
        )

    def restarted(self, name: str, pid: int | None) -> None:
        record = self.records[name]
        record.restarts += 1
        record.last_restart_at = self._wall_ms()
        self.started(name, pid)

    def stop(self, reason: str | None = None) -> None:
        if reason and not self.stopped_because:
            self.stopped_because = reason
        for record in self.records.values():
            if record.state != GAVE_UP:
                record.state = STOPPED
            record.pid = None
        self.write()

    def state(self) -> StackRestarts:
        return StackRestarts(
            started_at=self._started_at,
            updated_at=self._wall_ms(),
            stopped_because=self.stopped_because,
            components=tuple(record.typed(name) for name, record in self.records.items()),
        )

    def write(self) -> None:
        # Not fsynced: a view for the dashboard, rewritten on every change.
        atomic_write_json(self.state_path, self.state().to_json(), durable=False)
