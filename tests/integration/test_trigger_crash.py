"""The trigger killed with SIGKILL mid-stream and restarted: every record is delivered at least once,
and nothing that was checkpointed is delivered again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from backend.local.trigger import Trigger
from backend.settings import Settings
from backend.template import PROJECT_ROOT, Template
from tests.integration.test_trigger_delivery import FIXTURE_DIR, fixture_esm, invocations

RECORDS = 40
BATCH_SIZE = 4


def _sequence(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def test_kill_and_restart_neither_loses_nor_redelivers_checkpointed_records(
    ddb: Any, table_name: str, settings: Settings, template: Template, tmp_path: Path
) -> None:
    for i in range(RECORDS):
        ddb.put_item(TableName=table_name, Item={"id": {"S": f"k{i:03d}"}, "status": {"S": "PENDING"}})
    first_run = tmp_path / "first.jsonl"
    config = tmp_path / "child.json"
    config.write_text(
        json.dumps(
            {
                "dynamodb_port": settings.dynamodb_port,
                "table": table_name,
                "data_dir": str(settings.data_dir),
                "batch_size": BATCH_SIZE,
                # Slow batches, so that the kill lands in the middle of the stream.
                "environment": {"FIXTURE_RECORD_PATH": str(first_run), "FIXTURE_DELAY_SECONDS": "0.15"},
            }
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    child = subprocess.Popen(
        [sys.executable, str(FIXTURE_DIR / "trigger_child.py"), str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while len(invocations(first_run)) < 3:
            assert child.poll() is None, "the trigger process exited on its own"
            assert time.monotonic() < deadline, "the trigger process delivered nothing"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)

    # The checkpoint file is whole (atomic writes) and behind the end of the stream.
    checkpoints = json.loads(settings.checkpoint_path.read_text(encoding="utf-8"))
    ((shard_checkpoint,),) = (shards.values() for shards in checkpoints.values())
    checkpoint = int(shard_checkpoint["sequenceNumber"])
    first = [r for c in invocations(first_run) for r in c["records"]]
    assert first and all(c["pid"] == child.pid for c in invocations(first_run))
    # Nothing is checkpointed that was not delivered.
    assert checkpoint in {_sequence(r) for r in first}

    second_run = tmp_path / "second.jsonl"
    esm = fixture_esm(template, settings, second_run, batch_size=BATCH_SIZE, filter_patterns=())
    with Trigger(settings, template, esm=esm) as restarted:
        deadline = time.monotonic() + 15
        while len({r["eventID"] for c in invocations(second_run) for r in c["records"]}
                   | {r["eventID"] for r in first}) < RECORDS:  # fmt: skip
            assert time.monotonic() < deadline, "records were lost"
            restarted.poll_once()
    second = [r for c in invocations(second_run) for r in c["records"]]

    assert len(first) < RECORDS, "the kill came too late to test anything"
    assert second, "the restart had nothing left to deliver"
    assert all(_sequence(r) > checkpoint for r in second)  # nothing checkpointed came again
    delivered_ids = {r["dynamodb"]["Keys"]["id"]["S"] for r in first + second}
    assert delivered_ids == {f"k{i:03d}" for i in range(RECORDS)}  # at least once each
    # Records of the shard arrive in order within each run.
    assert [_sequence(r) for r in second] == sorted(_sequence(r) for r in second)
