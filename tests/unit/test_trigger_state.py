"""The trigger's state file has one typed definition: what the trigger writes is what readers get back,
and a file that is not a trigger's state is refused rather than half-read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.settings import Settings
from backend.trigger_state import (
    SILENT_AFTER_MS,
    MinuteCounts,
    TriggerMode,
    TriggerState,
    read_trigger_state,
)

NOW = 1_700_000_000_000


def a_state() -> TriggerState:
    return TriggerState(
        pid=42,
        started_at=NOW - 60_000,
        heartbeat_at=NOW - 500,
        stream_arn="arn:aws:dynamodb:local:000000000000:table/t/stream/x",
        last_batch_at=NOW - 1_000,
        last_batch_size=3,
        last_batch_result="PARTIAL",
        iterator_age_ms=12,
        batches=4,
        records=9,
        filtered_out=1,
        function_errors=1,
        records_sent_to_failure_destination=2,
        last_error="boom",
        shards=1,
        per_minute=[MinuteCounts(NOW // 60_000 * 60_000, batches=4, records=9, errors=1)],
    )


def test_the_document_keeps_the_contract_names_and_round_trips() -> None:
    document = a_state().to_json()
    assert document["heartbeatAt"] == NOW - 500 and document["state"] == "Enabled"
    assert document["recordsSentToFailureDestination"] == 2 and document["perMinute"][0]["errors"] == 1
    assert TriggerState.from_json(json.loads(json.dumps(document))) == a_state()


def test_one_liveness_rule() -> None:
    state = a_state()
    assert state.is_alive(state.heartbeat_at + SILENT_AFTER_MS)
    assert not state.is_alive(state.heartbeat_at + SILENT_AFTER_MS + 1)
    state.mode = TriggerMode.STOPPED
    assert not state.is_alive(state.heartbeat_at)


@pytest.mark.parametrize(
    "document",
    [
        {"pid": 1, "startedAt": NOW, "heartbeatAt": NOW, "state": "Sleeping"},
        {"pid": 1, "startedAt": NOW, "state": "Enabled"},
        {"pid": 1, "startedAt": NOW, "heartbeatAt": NOW, "state": "Enabled", "perMinute": [7]},
        {"pid": "x", "startedAt": NOW, "heartbeatAt": NOW, "state": "Enabled"},
    ],
)
def test_a_document_that_is_not_a_trigger_state_is_refused(document: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a trigger state"):
        TriggerState.from_json(document)


def test_reading_a_missing_or_broken_file_is_none(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert read_trigger_state(settings) is None
    settings.trigger_state_path.parent.mkdir(parents=True, exist_ok=True)
    settings.trigger_state_path.write_text("[1, 2]", encoding="utf-8")
    assert read_trigger_state(settings) is None
    settings.trigger_state_path.write_text(json.dumps(a_state().to_json()), encoding="utf-8")
    assert read_trigger_state(settings) == a_state()
