"""Where one trigger (one event source mapping) keeps its files: checkpoints, state, failure destination.

The processor's mapping keeps the paths ``Settings`` names under ``<data dir>/trigger/`` (the dashboard's
health page reads that state file). Every other mapping gets a directory of its own,
``<data dir>/trigger-<function logical id>/``, so two triggers on one stream never share a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.local.table_outage import PARKED_FILE
from backend.settings import Settings
from backend.template import FUNCTION_ID


@dataclass(frozen=True)
class TriggerFiles:
    checkpoint: Path
    state: Path
    failure_destination: Path  # what Lambda would send to the mapping's on-failure destination

    @property
    def parked(self) -> Path:
        """Records given up on during a table outage, handed back once the table answers again."""
        return self.state.parent / PARKED_FILE


def trigger_files(settings: Settings, function_id: str = FUNCTION_ID) -> TriggerFiles:
    """The files of the trigger that runs ``function_id``'s mapping."""
    if function_id == FUNCTION_ID:
        return TriggerFiles(
            settings.checkpoint_path, settings.trigger_state_path, settings.failure_destination_path
        )
    directory = settings.data_dir / f"trigger-{function_id}"
    return TriggerFiles(
        directory / settings.checkpoint_path.name,
        directory / settings.trigger_state_path.name,
        directory / settings.failure_destination_path.name,
    )
