"""DynamoDB Local killed with SIGKILL mid-batch and started again a few seconds later: the trigger waits
for the table instead of spending the batch's retries, and every request finishes without a person;
what was given up on during the outage anyway (records too old) is handed back automatically."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from streamdesk_processor import item

from backend.local.dynamodb_local import DynamoDBLocal, client, free_port
from backend.local.esm_config import load_esm_config
from backend.local.local_template import local_template
from backend.local.table import ensure_table
from backend.local.table_outage import PARKED_FILE
from backend.local.trigger import Trigger
from backend.settings import Settings
from backend.template import LocalValues, Template
from tests.processor_events import put_pending_item, read_stream_records

TABLE = "streamdesk-outage"
REQUESTS = 24
OUTAGE_SECONDS = 3.0


class Database:
    """A DynamoDB Local on disk on a fixed port, so that it can be killed and started again."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.port = free_port()
        self.instance: DynamoDBLocal | None = DynamoDBLocal.start(port=self.port, db_path=db_path)

    def kill(self) -> None:
        assert self.instance is not None
        self.instance.process.kill()  # SIGKILL
        self.instance.process.wait()
        self.instance = None

    def start(self) -> None:
        self.instance = DynamoDBLocal.start(port=self.port, db_path=self.db_path)

    def stop(self) -> None:
        if self.instance is not None:
            self.instance.stop()


@pytest.fixture()
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "db")
    try:
        yield db
    finally:
        db.stop()


def _settings(database: Database, tmp_path: Path) -> Settings:
    return Settings(
        dynamodb_port=database.port, table=TABLE, data_dir=tmp_path / "data", STREAMDESK_API_KEY="k" * 20
    )


def _statuses(ddb: Any) -> Counter[str]:
    items = ddb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return Counter(i[item.STATUS]["S"] for i in items)


def _wait_all(ddb: Any, status: str, timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            counts = _statuses(ddb)
        except Exception:  # the table restarting
            counts = Counter()
        if counts[status] == REQUESTS or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def _step_writes(endpoint: str) -> Counter[tuple[str, str]]:
    """How many stream records recorded each (request, step) as newly completed."""
    writes: Counter[tuple[str, str]] = Counter()
    for record in read_stream_records(endpoint, TABLE):
        new = record["dynamodb"].get("NewImage", {}).get(item.STEPS, {}).get("M", {})
        old = record["dynamodb"].get("OldImage", {}).get(item.STEPS, {}).get("M", {})
        for step, entry in new.items():
            if old.get(step) != entry:
                writes[(record["dynamodb"]["Keys"]["id"]["S"], step)] += 1
    return writes


def _run_through_outage(
    database: Database,
    settings: Settings,
    esm_changes: dict[str, Any],
    outage_seconds: float = OUTAGE_SECONDS,
) -> Trigger:
    template = local_template(settings, Template.load(local=LocalValues(refs={"RequestsTable": TABLE})))
    ddb = client(database.instance.endpoint if database.instance else "")
    ensure_table(ddb, TABLE, template)
    for n in range(REQUESTS):
        put_pending_item(ddb, TABLE, {"n": n, "simulate": {"delayMs": 120}})
    esm = replace(load_esm_config(template), batch_size=4, **esm_changes)
    trigger = Trigger(settings, template, esm=esm)
    stop = threading.Event()
    thread = threading.Thread(target=trigger.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # a batch done, and the next one mid-way (a request held by the processor)
            counts = _statuses(ddb)
            if counts[item.Status.SUCCEEDED] >= 4 and counts[item.Status.PROCESSING]:
                break
            assert time.monotonic() < deadline, f"no batch was running: {counts}"
            time.sleep(0.02)
        database.kill()
        time.sleep(outage_seconds)
        database.start()
        counts = _wait_all(ddb, item.Status.SUCCEEDED, timeout=90)
        assert counts == Counter({item.Status.SUCCEEDED: REQUESTS}), counts
    finally:
        stop.set()
        thread.join(timeout=30)
    assert database.instance is not None
    writes = _step_writes(database.instance.endpoint)
    assert len(writes) == REQUESTS * 4, "every request records its four steps"
    assert [key for key, count in writes.items() if count > 1] == []  # no completed step ran twice
    return trigger


def test_the_trigger_waits_out_the_outage_without_spending_retries(
    database: Database, tmp_path: Path
) -> None:
    settings = _settings(database, tmp_path)
    trigger = _run_through_outage(database, settings, {})
    state = trigger.state()
    assert state["tableOutagesWaited"] >= 1
    assert state["recordsSentToFailureDestination"] == 0
    assert not settings.failure_destination_path.exists()


def test_what_was_given_up_during_the_outage_is_handed_back(database: Database, tmp_path: Path) -> None:
    settings = _settings(database, tmp_path)
    # Records older than this are given up on. The outage (and DynamoDB Local's start) is longer, so the
    # records buffered when it began are that old when it ends; before it (cold start, first batch) they
    # are far younger, even on a loaded machine. The age counts from when the trigger read a record.
    trigger = _run_through_outage(database, settings, {"maximum_record_age_seconds": 8}, outage_seconds=8)
    state = trigger.state()
    assert state["recordsSentToFailureDestination"] >= 1  # as Lambda would: the destination is told
    assert settings.failure_destination_path.read_text().strip()
    assert state["handedBackAfterOutage"] >= 1  # ... and the trigger handed them back itself
    assert state["parkedByOutage"] == 0
    parked = settings.trigger_state_path.parent / PARKED_FILE
    assert parked.read_text() == ""
    assert json.loads(settings.trigger_state_path.read_text())["tableUnreachableSince"] is None
