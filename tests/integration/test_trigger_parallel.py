"""The trigger twin with ParallelizationFactor above 1: different keys in concurrent batches, one key's
records in order, the checkpoint never past a record that is not done; and the same under kill -9 of the
trigger, with the fixture function and with the real processor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from streamdesk_processor.item import Status

from backend.local.dynamodb_local import DynamoDBLocal, client
from backend.local.esm_config import load_esm_config
from backend.local.local_template import local_template
from backend.local.table import ensure_table
from backend.local.trigger import Trigger
from backend.settings import Settings, load_settings
from backend.template import PROJECT_ROOT, Template
from tests.integration.test_trigger_delivery import (
    FIXTURE_DIR,
    checkpointed,
    drain,
    fixture_esm,
    invocations,
    put_requests,
)
from tests.processor_events import put_pending_item

FACTOR = 4


def _seq(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def _key(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["Keys"]["id"]["S"])


def delivered(path: Path) -> list[dict[str, Any]]:
    return [r for c in invocations(path) for r in c["records"]]


def test_keys_run_in_concurrent_batches_each_key_in_order(
    ddb: Any, table_name: str, settings: Settings, template: Template, tmp_path: Path
) -> None:
    put_requests(ddb, table_name, [f"k{i:02d}" for i in range(12)])
    for n in range(3):  # one item written four times: four records that must arrive in order
        item = {"id": {"S": "same"}, "status": {"S": "PENDING"}, "n": {"N": str(n)}}
        ddb.put_item(TableName=table_name, Item=item)
    record_path = tmp_path / "invocations.jsonl"
    esm = fixture_esm(
        template, settings, record_path, batch_size=2, parallelization_factor=FACTOR, filter_patterns=()
    )
    environment = {**esm.function.environment, "FIXTURE_BARRIER_PARTIES": "2"}
    esm = replace(esm, function=replace(esm.function, environment=environment))
    with Trigger(settings, template, esm=esm) as trigger:
        drain(trigger, lambda: len(delivered(record_path)) >= 15)
        state = trigger.state()

    records = delivered(record_path)
    assert len(records) == 15 and len({r["eventID"] for r in records}) == 15  # each once
    by_key: dict[str, list[int]] = defaultdict(list)
    for record in records:
        by_key[_key(record)].append(_seq(record))
    assert all(seqs == sorted(seqs) for seqs in by_key.values()) and len(by_key["same"]) == 3
    assert all(len(c["records"]) <= 2 for c in invocations(record_path))
    assert state["functionErrors"] == 0  # the barrier met: two invocations were in flight together
    assert [int(c) for c in checkpointed(settings)] == [max(_seq(r) for r in records)]
    assert state["parallelizationFactor"] == FACTOR and state["inFlightBatches"] == 0
    (progress,) = state["shardProgress"]
    assert int(progress["checkpoint"]) == max(_seq(r) for r in records) and progress["notCheckpointed"] == 0


def test_a_partial_failure_resends_only_its_lane_and_the_checkpoint_waits_for_it(
    ddb: Any, table_name: str, settings: Settings, template: Template, tmp_path: Path
) -> None:
    ids = [f"p{i:02d}" for i in range(10)]
    put_requests(ddb, table_name, ids, mode={"p03": "partial-fail-once"})
    record_path = tmp_path / "invocations.jsonl"
    esm = fixture_esm(
        template, settings, record_path, batch_size=3, parallelization_factor=FACTOR, filter_patterns=()
    )
    with Trigger(settings, template, esm=esm) as trigger:
        drain(trigger, lambda: {_key(r) for r in delivered(record_path)} == set(ids) and trigger.state()[
            "shardProgress"][0]["notCheckpointed"] == 0)  # fmt: skip
    counts: dict[str, int] = defaultdict(int)
    for record in delivered(record_path):
        counts[_key(record)] += 1
    assert counts["p03"] == 2  # failed once, re-sent
    resent = [c for c in invocations(record_path) if "p03" in [_key(r) for r in c["records"]]][1]
    assert _key(resent["records"][0]) == "p03"  # re-sent from the failed record, its lane only
    resent_keys = {_key(r) for r in resent["records"]}
    assert all(counts[i] == 1 for i in ids if i not in resent_keys)  # the other lanes: once each
    assert [int(c) for c in checkpointed(settings)] == [max(_seq(r) for r in delivered(record_path))]


def _start_child(settings: Settings, table_name: str, tmp_path: Path, real: bool, path: Path) -> Any:
    config = tmp_path / "child.json"
    environment = {} if real else {"FIXTURE_RECORD_PATH": str(path), "FIXTURE_DELAY_SECONDS": "0.15"}
    config.write_text(
        json.dumps(
            {
                "dynamodb_port": settings.dynamodb_port,
                "table": table_name,
                "data_dir": str(settings.data_dir),
                "batch_size": 4,
                "parallelization_factor": FACTOR,
                "real_processor": real,
                "environment": environment,
            }
        ),
        encoding="utf-8",
    )
    return subprocess.Popen(
        [sys.executable, str(FIXTURE_DIR / "trigger_child.py"), str(config)],
        env={**os.environ, "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{PROJECT_ROOT / 'lambda'}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_when(child: Any, ready: Any, what: str) -> None:
    try:
        deadline = time.monotonic() + 30
        while not ready():
            assert child.poll() is None, "the trigger process exited on its own"
            assert time.monotonic() < deadline, f"the trigger process never got to {what}"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


def test_kill_with_parallel_batches_never_checkpoints_past_an_undelivered_record(
    ddb: Any, table_name: str, settings: Settings, template: Template, tmp_path: Path
) -> None:
    ids = [f"c{i:02d}" for i in range(40)]
    put_requests(ddb, table_name, ids)
    first_run = tmp_path / "first.jsonl"
    child = _start_child(settings, table_name, tmp_path, real=False, path=first_run)
    # Killed once the watermark has moved at least once, so that there is a checkpoint to hold to.
    saved = settings.checkpoint_path.exists
    _kill_when(child, lambda: len(invocations(first_run)) >= 5 and saved(), "five invocations, a checkpoint")

    first = delivered(first_run)
    assert len({_key(r) for r in first}) < len(ids), "the kill came too late to test anything"
    (checkpoint,) = [int(c) for c in checkpointed(settings)]
    first_seqs = {_seq(r) for r in first}
    second_run = tmp_path / "second.jsonl"
    esm = fixture_esm(template, settings, second_run, batch_size=4, parallelization_factor=FACTOR,
                      filter_patterns=())  # fmt: skip
    with Trigger(settings, template, esm=esm) as restarted:
        drain(restarted, lambda: {_key(r) for r in first + delivered(second_run)} == set(ids), timeout=20)
    second = delivered(second_run)
    every = sorted({_seq(r) for r in first + second})
    # The watermark: every record up to the checkpoint was delivered before the kill...
    assert all(seq in first_seqs for seq in every if seq <= checkpoint)
    # ...and nothing at or before it came again.
    assert second and all(_seq(r) > checkpoint for r in second)


@pytest.mark.timeout(120)
def test_kill_with_the_real_processor_loses_nothing_and_repeats_no_completed_step(
    ddb: Any, table_name: str, settings: Settings, template: Template, tmp_path: Path
) -> None:
    ids = [put_pending_item(ddb, table_name, {"n": i, "simulate": {"delayMs": 80}}) for i in range(40)]
    child = _start_child(settings, table_name, tmp_path, real=True, path=tmp_path / "unused.jsonl")
    _kill_when(child, lambda: _count(ddb, table_name, ids, Status.SUCCEEDED) >= 4, "four finished requests")
    assert _count(ddb, table_name, ids, Status.SUCCEEDED) < len(ids), "the kill came too late"

    with Trigger(settings, template) as restarted:
        deadline = time.monotonic() + 60
        while _count(ddb, table_name, ids, Status.SUCCEEDED) < len(ids):
            assert time.monotonic() < deadline, "requests lost or stuck after the restart"
            restarted.poll_once()
            time.sleep(0.05)
    assert_no_step_rewritten(settings, ids)


def _count(ddb: Any, table: str, ids: list[str], status: Status) -> int:
    found = 0
    for start in range(0, len(ids), 100):
        keys = [{"id": {"S": i}} for i in ids[start : start + 100]]
        items = ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
        found += sum(1 for i in items["Responses"][table] if i["status"]["S"] == status.value)
    return found


def assert_no_step_rewritten(settings: Settings, ids: list[str]) -> None:
    """From the table's stream: once a step is recorded on an item, no later image changes it (a completed
    step that ran again would rewrite its entry with the new attempt)."""
    streams = boto3.client("dynamodbstreams", **settings.boto3_kwargs())
    seen: dict[tuple[str, str], Any] = {}
    rewritten = []
    arn = streams.list_streams(TableName=settings.table)["Streams"][0]["StreamArn"]
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                image = record["dynamodb"].get("NewImage") or {}
                for name, entry in (image.get("steps", {}).get("M") or {}).items():
                    key = (image["id"]["S"], name)
                    if key in seen and seen[key] != entry:
                        rewritten.append(key)
                    seen[key] = entry
            iterator = page.get("NextShardIterator") if page["Records"] else None
    assert not rewritten, f"completed steps ran again: {rewritten[:5]}"
    assert {request for request, _ in seen} == set(ids)


@pytest.mark.timeout(150)
def test_dynamodb_local_killed_mid_batch_loses_nothing_and_repeats_no_completed_step(
    template: Template, tmp_path: Path
) -> None:
    db_path = tmp_path / "db"
    engine = DynamoDBLocal.start(db_path=db_path)  # on disk: what was acknowledged survives the kill
    table = "streamdesk-kill-db"
    settings = load_settings(
        dynamodb_port=engine.port,
        table=table,
        data_dir=tmp_path / "data",
        STREAMDESK_API_KEY="test-key-0123456789",
    )
    ddb = client(engine.endpoint)
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        ensure_table(ddb, table, template)
        ids = [put_pending_item(ddb, table, {"n": i, "simulate": {"delayMs": 80}}) for i in range(40)]
        # Retries until the table is back (the default finite retries would give up during the outage).
        esm = replace(load_esm_config(local_template(settings, template)), maximum_retry_attempts=-1)
        assert esm.parallelization_factor > 1
        trigger = Trigger(settings, template, esm=esm)
        thread = threading.Thread(target=trigger.run, args=(stop,), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while _count(ddb, table, ids, Status.SUCCEEDED) < 4:
            assert time.monotonic() < deadline, "nothing finished before the kill"
            time.sleep(0.02)
        assert _count(ddb, table, ids, Status.SUCCEEDED) < len(ids), "the kill came too late"
        engine.process.send_signal(signal.SIGKILL)
        engine.process.wait(timeout=10)
        time.sleep(0.5)
        engine = DynamoDBLocal.start(port=engine.port, db_path=db_path)
        deadline = time.monotonic() + 90
        while _count(ddb, table, ids, Status.SUCCEEDED) < len(ids):
            assert time.monotonic() < deadline, "requests lost or stuck after DynamoDB Local came back"
            time.sleep(0.2)
        assert_no_step_rewritten(settings, ids)
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)
        engine.stop()
