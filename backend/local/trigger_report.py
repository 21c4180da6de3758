"""The trigger twin's state reporting: what it counts per batch and per minute, and the state file the
dashboard, the supervisor and the stuck diagnosis read (:class:`backend.trigger_state.TriggerState`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from backend.clock import now_ms
from backend.local.batch_outcome import RESULT_FUNCTION_ERROR, RESULT_OK, Outcome
from backend.local.checkpoint import atomic_write_json
from backend.local.shards import Shard, StreamRecord, shard_progress
from backend.local.table_outage import OutageGuard
from backend.trigger_state import MinuteCounts, TriggerState

log = logging.getLogger("streamdesk.trigger")

HEARTBEAT_SECONDS: Final = 1.0
PER_MINUTE_KEPT: Final = 60


class TriggerReport:
    """Counts into ``stats`` and writes the state file (at most once a HEARTBEAT_SECONDS unless forced)."""

    def __init__(
        self,
        path: Path,
        stats: TriggerState,
        lock: threading.RLock,
        shards: Callable[[], list[Shard]],
        outage: OutageGuard,
    ) -> None:
        self.stats = stats
        self._path = path
        self._lock = lock  # lane workers report batches concurrently
        self._shards = shards
        self._outage = outage
        self._per_minute: dict[int, dict[str, int]] = {}
        self._last_write = 0.0

    def record_batch(
        self, shard: Shard, records: list[StreamRecord], outcome: Outcome, seconds: float
    ) -> None:
        with self._lock:  # lane workers report batches concurrently
            self._count_batch(shard, records, outcome, seconds)
            self.write(force=True)

    def _count_batch(
        self, shard: Shard, records: list[StreamRecord], outcome: Outcome, seconds: float
    ) -> None:
        now = time.time()
        iterator_age_ms = max(0, int((now - records[-1].arrival) * 1000))
        stats = self.stats
        stats.batches += 1
        stats.records += len(records)
        stats.last_batch_at = int(now * 1000)
        stats.last_batch_size = len(records)
        stats.last_batch_result = outcome.result
        stats.iterator_age_ms = iterator_age_ms
        if outcome.result == RESULT_FUNCTION_ERROR:
            stats.function_errors += 1
            stats.last_error = outcome.error
        minute = int(now // 60) * 60_000
        bucket = self._per_minute.setdefault(minute, {"batches": 0, "records": 0, "errors": 0})
        bucket["batches"] += 1
        bucket["records"] += len(records)
        if outcome.result != RESULT_OK:
            bucket["errors"] += 1
        for old in sorted(self._per_minute)[:-PER_MINUTE_KEPT]:
            del self._per_minute[old]
        log.info(
            "batch shard=%s size=%d result=%s iterator_age_ms=%d duration_ms=%d%s",
            shard.shard_id,
            len(records),
            outcome.result,
            iterator_age_ms,
            int(seconds * 1000),
            f" error={outcome.error}" if outcome.error else "",
        )

    def state(self) -> dict[str, Any]:
        """The state document the dashboard reads (:class:`backend.trigger_state.TriggerState`)."""
        with self._lock:
            per_minute = [
                MinuteCounts(minute, **counts) for minute, counts in sorted(self._per_minute.items())
            ]
            progress = [shard_progress(shard) for shard in self._shards()]
            return replace(
                self.stats,
                heartbeat_at=now_ms(),
                per_minute=per_minute,
                in_flight_batches=sum(p.in_flight_batches for p in progress),
                shard_progress=progress,
                **self._outage.stats(),
            ).to_json()

    def write(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_write < HEARTBEAT_SECONDS:
                return
            self._last_write = now
            # Not fsynced: it is a view for the dashboard, rewritten every second.
            atomic_write_json(self._path, self.state(), durable=False)
