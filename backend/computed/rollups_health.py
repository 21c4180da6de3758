"""The rollups on the Health page: the rollups consumer's trigger (is it counting, how far behind are the
counts) and the requests per minute of the last hour, read from the rollups (one Query per write shard and
day, whatever the traffic).

Locally the rollups trigger twin reports through its own state file
(``<data dir>/trigger-RollupsFunction/state.json``); on AWS its mapping ``RollupsStream`` and its function's
IteratorAge tell the same (:mod:`backend.deployed.health`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pandas as pd
from streamdesk_rollups.schema import MS_PER_MINUTE, Grain, Transition

from backend.deployed.health import DeployedHealth, MappingStatus, health_from
from backend.local.trigger_files import trigger_files
from backend.rollups.reader import RollupReader
from backend.settings import Settings
from backend.template import ROLLUPS_FUNCTION_ID
from backend.trigger_state import TriggerState, read_trigger_state

# The request transitions the Health page charts per minute (the trigger's batches stay its own counters).
ACTIVITY: Final = (Transition.ACCEPTED, Transition.STARTED, Transition.SUCCEEDED, Transition.FAILED)
ACTIVITY_MINUTES: Final = 60


@dataclass(frozen=True)
class RollupsTrigger:
    """The rollups consumer's trigger as the Health page shows it. ``running`` None: unknown."""

    running: bool | None
    last_batch_at: int | None = None  # epoch ms
    iterator_age_ms: int | None = None  # the age of the latest counted record when it was counted
    heartbeat_at: int | None = None  # local only
    state: TriggerState | None = None  # local: the whole state file (None: it never ran here)
    mapping: MappingStatus | None = None  # deployed: RollupsStream

    @property
    def behind_ms(self) -> int | None:
        """How far the counts are behind the requests while it runs: the iterator age (None: unknown)."""
        return self.iterator_age_ms if self.running else None


def local_rollups_trigger(settings: Settings, now_ms: int) -> RollupsTrigger:
    """From the rollups trigger twin's state file (``running`` False when it never ran here)."""
    state = read_trigger_state(settings, trigger_files(settings, ROLLUPS_FUNCTION_ID).state)
    if state is None:
        return RollupsTrigger(running=False)
    return RollupsTrigger(
        running=state.is_alive(now_ms),
        last_batch_at=state.last_batch_at,
        iterator_age_ms=state.iterator_age_ms,
        heartbeat_at=state.heartbeat_at,
        state=state,
    )


def deployed_rollups_trigger(deployed: DeployedHealth) -> RollupsTrigger | None:
    """From a deployed stack's ``RollupsStream`` mapping and metrics (None: a stack without rollups)."""
    if deployed.rollups_mapping is None and not deployed.rollups_metrics:
        return None
    health = health_from(deployed.rollups_mapping, deployed.rollups_metrics)
    return RollupsTrigger(
        running=health.running,
        last_batch_at=health.last_batch_at,
        iterator_age_ms=health.iterator_age_ms,
        mapping=deployed.rollups_mapping,
    )


def request_activity(reader: RollupReader, now_ms: int, minutes: int = ACTIVITY_MINUTES) -> pd.DataFrame:
    """Requests accepted, started, succeeded and failed per minute over the last ``minutes`` (every minute
    present, 0 where nothing happened), as a long frame: time (UTC), metric, value. Raises what the reader
    raises (StoreUnavailable through a guarded client)."""
    last = now_ms - now_ms % MS_PER_MINUTE
    first = last - (minutes - 1) * MS_PER_MINUTE
    buckets = reader.buckets(first, now_ms, Grain.MINUTE)
    rows = [
        {
            "time": pd.Timestamp(minute, unit="ms", tz="UTC"),
            "metric": transition.value,
            "value": buckets[minute].counts[transition] if minute in buckets else 0,
        }
        for minute in range(first, last + 1, MS_PER_MINUTE)
        for transition in ACTIVITY
    ]
    return pd.DataFrame(rows, columns=["time", "metric", "value"])
