"""The trigger's view of a table outage: an unreachable table is not the request's failure.

When a batch fails, the trigger asks :meth:`OutageGuard.waited_out` before it spends a retry: if the table
does not answer, the guard waits (backing off up to ``MAX_WAIT_SECONDS`` between probes) until it does, and
the trigger then retries the batch without counting that failure. A batch the trigger gives up on anyway
while an outage was involved (its records grew older than MaximumRecordAgeInSeconds during an outage, or
the table dropped again between probe and retry) still goes to the on-failure destination, as on AWS,
and is also *parked* (``trigger/parked-by-outage.jsonl``): once the table answers again, the guard hands
the parked records back to the function. The processor's claim protocol makes that redelivery safe (a
finished request is skipped; a half-done one resumes after its last completed step).

On AWS the same situation looks different; docs/operations.md says what happens there.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from backend.local.checkpoint import append_line_durably, atomic_write_text

log = logging.getLogger("streamdesk.trigger.outage")

FIRST_WAIT_SECONDS: Final = 0.25
MAX_WAIT_SECONDS: Final = 5.0
HAND_BACK_EVERY_SECONDS: Final = 2.0
PARKED_FILE: Final = "parked-by-outage.jsonl"

Probe = Callable[[], bool]
Deliver = Callable[[list[dict[str, Any]]], bool]  # True when the function finished every record


class OutageStopped(Exception):
    """The trigger was asked to stop while waiting for the table."""


class OutageGuard:
    """Waits out table outages, parks what was given up on during one, and hands it back afterwards."""

    def __init__(self, probe: Probe, parked_path: Path, stop: threading.Event | None = None) -> None:
        self._probe = probe
        self.parked_path = parked_path
        self.stop = stop or threading.Event()
        self.unreachable_since_ms: int | None = None
        self.outages = 0
        self.waited_seconds = 0.0
        self.handed_back = 0
        self.last_unreachable_at: float | None = None  # epoch seconds of the last failed probe
        self._next_hand_back = 0.0
        # Lane workers (ParallelizationFactor > 1) wait, park and count concurrently with the main loop's
        # hand-back, which rewrites the parked file: one lock for the file and the counters.
        self._lock = threading.RLock()

    def reachable(self) -> bool:
        try:
            return self._probe()
        except Exception:  # any failure to answer is "not reachable"
            self.last_unreachable_at = time.time()
            return False

    def lived_through_outage(self, arrived_at: float) -> bool:
        """True if the table was seen unreachable after a record arrived (epoch seconds): a give-up of
        such a record may be the outage's doing, not the request's."""
        return self.last_unreachable_at is not None and self.last_unreachable_at >= arrived_at

    def waited_out(self, on_wait: Callable[[], None] | None = None) -> bool:
        """After a failed batch: True if the table was unreachable and is back (retry without counting).

        Blocks while the table does not answer, calling ``on_wait`` after every probe (the trigger writes
        its state then, so that the dashboard sees it waiting, alive); raises :class:`OutageStopped` if
        asked to stop meanwhile.
        """
        if self.reachable():
            return False
        with self._lock:
            self.outages += 1
            if self.unreachable_since_ms is None:
                self.unreachable_since_ms = int(time.time() * 1000)
        started = time.monotonic()
        log.warning("the table does not answer: waiting for it; the batch's retries are not being spent")
        wait = FIRST_WAIT_SECONDS
        while not self.reachable():
            if on_wait is not None:
                on_wait()
            if self.stop.wait(wait):
                raise OutageStopped
            wait = min(wait * 2, MAX_WAIT_SECONDS)
        seconds = time.monotonic() - started
        with self._lock:
            self.waited_seconds += seconds
            self.unreachable_since_ms = None
        log.warning("the table answers again after %.1f s: retrying the batch", seconds)
        return True

    # ------------------------------------------------------------------------------- parked records
    def park(self, records: list[dict[str, Any]], reason: str) -> None:
        """Keep a given-up batch's records (Lambda-shaped) to hand back once the table answers."""
        line = json.dumps({"parkedAt": int(time.time() * 1000), "reason": reason, "Records": records})
        with self._lock:
            append_line_durably(self.parked_path, line)
        log.warning("parked %d record(s) given up on during a table outage (%s)", len(records), reason)

    def parked(self) -> list[dict[str, Any]]:
        with self._lock:
            if not self.parked_path.is_file():
                return []
            lines = self.parked_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def hand_back(self, deliver: Deliver) -> int:
        """Deliver parked batches again if the table answers; returns how many batches finished.

        A batch whose delivery fails stays parked for the next try (at most every
        ``HAND_BACK_EVERY_SECONDS``). The file is rewritten with what is left.
        """
        if time.monotonic() < self._next_hand_back or not self.parked_path.is_file():
            return 0
        self._next_hand_back = time.monotonic() + HAND_BACK_EVERY_SECONDS
        batches = self.parked()
        if not batches or not self.reachable():
            return 0
        # Delivered outside the lock (lanes that finish a batch meanwhile must not wait on it); the
        # rewrite below keeps every line parked meanwhile, since it removes only the lines delivered here.
        delivered = {json.dumps(batch) for batch in batches if deliver(batch["Records"])}
        finished = len(delivered)
        with self._lock:
            left = [batch for batch in self.parked() if json.dumps(batch) not in delivered]
            text = "".join(json.dumps(batch) + "\n" for batch in left)
            atomic_write_text(self.parked_path, text)
            self.handed_back += finished
        if finished:
            log.warning("handed back %d parked batch(es) after the table outage", finished)
        return finished

    def stats(self) -> dict[str, Any]:
        """The outage fields of :class:`backend.trigger_state.TriggerState` (docs/internal-contracts.md)."""
        parked = self.parked()
        with self._lock:
            return {
                "table_unreachable_since": self.unreachable_since_ms,
                "table_outages_waited": self.outages,
                "table_outage_seconds": round(self.waited_seconds, 1),
                "parked_by_outage": sum(len(b["Records"]) for b in parked),
                "handed_back_after_outage": self.handed_back,
            }
