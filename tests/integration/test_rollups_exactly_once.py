"""The rollups consumer against DynamoDB Local, fed the real stream of a mixed run through the processor:
every record counted exactly once whatever the delivery (duplicates, bisected and out-of-order
redeliveries, a crash mid-apply, two invocations at once), and the counts equal a recount from the items."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from streamdesk_processor import item
from streamdesk_processor.item import Status
from streamdesk_rollups import deltas
from streamdesk_rollups.schema import Grain, Stage, Transition

from backend.computed import failures
from backend.local.dynamodb_local import client
from backend.local.table import ensure_table
from backend.rollups.model import Rollup
from backend.rollups.rebuild import rebuild
from backend.template import PROJECT_ROOT, TABLE_ID, LocalValues, Template
from tests.processor_events import lambda_context
from tests.rollups_workload import (
    Workload,
    create_rollups_table,
    make_consumer,
    reader,
    run_workload,
    scan_items,
)

BATCH = 25


_rollups_tables = itertools.count(1)


@pytest.fixture()
def rollups_table(ddb: Any) -> Iterator[str]:
    name = create_rollups_table(ddb, f"streamdesk-rollups-{os.getpid()}-{next(_rollups_tables)}")
    yield name
    ddb.delete_table(TableName=name)


@pytest.fixture(scope="module")
def workload(dynamodb_endpoint: str) -> Iterator[Workload]:
    """One mixed run for the module: the tests only read its requests table and stream."""
    ddb = client(dynamodb_endpoint)
    name = f"streamdesk-rollups-workload-{os.getpid()}"
    ensure_table(ddb, name, Template.load(local=LocalValues(refs={TABLE_ID: name})))
    yield run_workload(ddb, dynamodb_endpoint, name, requests=60, cancels=2, resolves=3, reopens=1)
    ddb.delete_table(TableName=name)


def batches(records: list[dict[str, Any]], size: int = BATCH) -> list[list[dict[str, Any]]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


def deliver(consumer: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    response, _ = consumer.handle({"Records": records})
    return response


def snapshot(ddb: Any, table: str, w: Workload) -> dict[str, Any]:
    """Everything a reader can see, for both grains, plus the gauge."""
    seen: dict[str, Any] = {"openFailures": reader(ddb, table).open_failures()}
    for grain in Grain:
        for start, rollup in reader(ddb, table).buckets(w.since_ms, w.until_ms, grain).items():
            seen[f"{grain.value}{start}"] = _plain(rollup)
    return seen


def _plain(rollup: Rollup) -> dict[str, Any]:
    return {
        "counts": {t.value: n for t, n in rollup.counts.items() if n},
        "groups": {k: g.count for k, g in rollup.groups.items()},
        "sketches": {s.value: sk.to_counts() for s, sk in rollup.sketches.items()},
    }


def apply_cleanly(ddb: Any, table: str, w: Workload) -> dict[str, Any]:
    consumer = make_consumer(ddb, table)
    for batch in batches(w.records):
        assert deliver(consumer, batch) == {"batchItemFailures": []}
    return snapshot(ddb, table, w)


# ------------------------------------------------------------------------------------ the recount
def assert_counts_equal_the_items(ddb: Any, rollups_table: str, w: Workload) -> list[dict[str, Any]]:
    """Every count the rollups hold for the run equals a recount over its items (and their trails);
    returns the items."""
    totals = reader(ddb, rollups_table).total(w.since_ms, w.until_ms)
    items = scan_items(ddb, w.table)
    status = [i[item.STATUS]["S"] for i in items]
    attempts = sum(int(i[item.ATTEMPTS]["N"]) for i in items)
    started_items = sum(1 for i in items if int(i[item.ATTEMPTS]["N"]) > 0)
    redrives = sum(int(i.get(item.REDRIVES, {"N": "0"})["N"]) for i in items)
    actions = [
        entry["M"][item.TRAIL_ACTION]["S"] for i in items for entry in i.get(item.TRAIL, {"L": []})["L"]
    ]
    failed_or_resolved = status.count(Status.FAILED) + status.count(Status.RESOLVED)
    assert totals.counts[Transition.ACCEPTED] == len(items)
    assert totals.counts[Transition.STARTED] == attempts
    assert totals.counts[Transition.SUCCEEDED] == status.count(Status.SUCCEEDED)
    # A failure redriven since failed once more than its item shows; a reopened one did not fail again.
    assert totals.counts[Transition.FAILED] == failed_or_resolved + redrives
    assert totals.counts[Transition.REDRIVEN] == redrives
    # Every start but a request's first and those after a redrive followed an automatic retry.
    assert totals.counts[Transition.RETRIED] == attempts - started_items - redrives
    assert totals.counts[Transition.CANCELLED] == status.count(Status.CANCELLED) == actions.count("cancel")
    assert totals.counts[Transition.RESOLVED] == actions.count("resolve")
    assert totals.counts[Transition.REOPENED] == actions.count("reopen")
    assert totals.counts[Transition.EXPIRED] == 0
    assert reader(ddb, rollups_table).open_failures() == status.count(Status.FAILED)
    # Failure groups carry the failures page's key and folded message (from their own group item).
    failed_items = [i for i in items if i[item.STATUS]["S"] in item.FAILED_OUTCOMES]
    expected_groups = {
        failures.group_key(i[item.ERROR]["M"]["type"]["S"], i[item.ERROR]["M"]["message"]["S"]): (
            i[item.ERROR]["M"]["type"]["S"],
            failures.normalise_message(i[item.ERROR]["M"]["message"]["S"]),
        )
        for i in failed_items
    }
    assert {key: (g.error_type, g.pattern) for key, g in totals.groups.items()} == expected_groups
    assert sum(g.count for g in totals.groups.values()) == totals.counts[Transition.FAILED]
    # Hour buckets hold the same as minute buckets.
    hours = reader(ddb, rollups_table).total(w.since_ms, w.until_ms, Grain.HOUR)
    assert _plain(hours) == _plain(totals)
    return items


def test_counts_equal_a_recount_from_the_items(ddb: Any, rollups_table: str, workload: Workload) -> None:
    apply_cleanly(ddb, rollups_table, workload)
    items = assert_counts_equal_the_items(ddb, rollups_table, workload)
    status = [i[item.STATUS]["S"] for i in items]
    redrives = sum(int(i.get(item.REDRIVES, {"N": "0"})["N"]) for i in items)
    # The workload did what it promised: redrives (one of them a reopened resolution), cancels, resolves.
    assert redrives == 4 and status.count(Status.FAILED) > 3
    assert status.count(Status.CANCELLED) == 2 and status.count(Status.RESOLVED) == 2
    # Bucket by bucket, the rebuild's recount finds nothing missing; what it finds more of in the
    # rollups is only the failures that a redrive has since taken off the items, and the resolution
    # that a reopen took off its item.
    report = rebuild(ddb, workload.table, rollups_table, 4, workload.since_ms, workload.until_ms)
    assert report.missing == 0
    extra = {d.figure.split(" ")[0] for d in report.differences}
    assert extra <= {"failed", "group", "samples", "resolved"}
    assert sum(d.stored - d.recounted for d in report.differences if d.figure == "failed") == 2 * redrives
    assert sum(d.stored - d.recounted for d in report.differences if d.figure == "resolved") == 2 * 1


def test_latency_quantiles_are_within_one_percent_of_the_items(
    ddb: Any, dynamodb_endpoint: str, table_name: str, rollups_table: str
) -> None:
    w = run_workload(ddb, dynamodb_endpoint, table_name, requests=120, redrives=0, seed=3)
    apply_cleanly(ddb, rollups_table, w)
    totals = reader(ddb, rollups_table).total(w.since_ms, w.until_ms)
    finished = [i for i in scan_items(ddb, table_name) if i[item.STATUS]["S"] != Status.PENDING]
    stages = {
        Stage.QUEUE_WAIT: [int(i[item.STARTED_AT]["N"]) - int(i[item.CREATED_AT]["N"]) for i in finished],
        Stage.PROCESSING: [int(i[item.FINISHED_AT]["N"]) - int(i[item.STARTED_AT]["N"]) for i in finished],
        Stage.END_TO_END: [int(i[item.FINISHED_AT]["N"]) - int(i[item.CREATED_AT]["N"]) for i in finished],
    }
    for stage, values in stages.items():
        ordered = sorted(values)
        assert totals.sketches[stage].count == len(ordered)
        assert len(set(ordered)) > 20, "latencies should vary"
        for q in (0.5, 0.95, 0.99):
            exact = ordered[math.floor(q * (len(ordered) - 1))]
            estimate = totals.sketches[stage].quantile(q)
            assert estimate is not None
            assert abs(estimate - exact) <= 0.01 * exact + 1e-9, (stage, q, exact, estimate)


# ------------------------------------------------------------------------------- redelivery
def test_duplicate_bisected_and_out_of_order_redeliveries_change_nothing(
    ddb: Any, rollups_table: str, workload: Workload
) -> None:
    expected = apply_cleanly(ddb, rollups_table, workload)
    consumer = make_consumer(ddb, rollups_table)
    parts = batches(workload.records)
    # The last batch again (its response was lost), the first after the last (a restart from an old
    # checkpoint), halves of a batch (bisect), and the whole stream as one batch.
    for batch in [parts[-1], parts[0], parts[1][:12], parts[1][12:], workload.records]:
        response, report = consumer.handle({"Records": batch})
        assert response == {"batchItemFailures": []}
        assert report is not None and report.applied == [] and report.transactions == 0
    assert snapshot(ddb, rollups_table, workload) == expected


def test_a_redelivery_that_overlaps_new_records_counts_only_the_new_ones(
    ddb: Any, rollups_table: str, workload: Workload
) -> None:
    reference = create_rollups_table(ddb, f"{rollups_table}-ref")
    expected = apply_cleanly(ddb, reference, workload)
    consumer = make_consumer(ddb, rollups_table)
    records = workload.records
    # Lambda re-sends from the lowest failed record: batches that overlap the ones before them.
    for start in range(0, len(records), 10):
        assert deliver(consumer, records[max(0, start - 15) : start + 10]) == {"batchItemFailures": []}
    assert snapshot(ddb, rollups_table, workload) == expected
    ddb.delete_table(TableName=reference)


class CrashingClient:
    """The DynamoDB client, except that the ``crash_at``-th transaction dies, before or after it committed."""

    def __init__(self, real: Any, crash_at: int, after_commit: bool) -> None:
        self._real, self._crash_at, self._after = real, crash_at, after_commit
        self.transactions = 0

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.transactions += 1
        if self.transactions == self._crash_at:
            if self._after:
                self._real.transact_write_items(**kwargs)
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "crash"}}, "TransactWriteItems"
            )
        return self._real.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
def test_a_crash_mid_apply_loses_nothing_and_counts_nothing_twice(
    ddb: Any, rollups_table: str, workload: Workload, monkeypatch: pytest.MonkeyPatch, after_commit: bool
) -> None:
    reference = create_rollups_table(ddb, f"{rollups_table}-ref")
    expected = apply_cleanly(ddb, reference, workload)
    monkeypatch.setattr(deltas, "MAX_TRANSACTION_ITEMS", 12)  # many small transactions per batch
    crashing = CrashingClient(ddb, crash_at=3, after_commit=after_commit)
    broken = make_consumer(crashing, rollups_table)
    first = workload.records[0]["dynamodb"]["SequenceNumber"]

    # All or nothing: the whole batch is reported, so the mapping re-sends every record of it.
    assert deliver(broken, workload.records) == {"batchItemFailures": [{"itemIdentifier": first}]}
    partial = snapshot(ddb, rollups_table, workload)
    assert partial != expected and crashing.transactions == 3  # two (or three) chunks were in

    response, report = make_consumer(ddb, rollups_table).handle({"Records": workload.records})
    assert response == {"batchItemFailures": []}
    assert report is not None and report.duplicates > 0
    assert snapshot(ddb, rollups_table, workload) == expected
    ddb.delete_table(TableName=reference)


def test_two_invocations_of_one_batch_at_once_count_it_once(
    ddb: Any, dynamodb_endpoint: str, rollups_table: str, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = create_rollups_table(ddb, f"{rollups_table}-ref")
    expected = apply_cleanly(ddb, reference, workload)
    monkeypatch.setattr(deltas, "MAX_TRANSACTION_ITEMS", 12)
    responses: list[dict[str, Any]] = []

    def run() -> None:
        consumer = make_consumer(client(dynamodb_endpoint), rollups_table)
        responses.append(deliver(consumer, workload.records))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # An invocation may give up on a conflict (and its batch would be re-sent); none may double count.
    for response in responses:
        if response["batchItemFailures"]:
            assert deliver(make_consumer(ddb, rollups_table), workload.records) == {"batchItemFailures": []}
    assert len(responses) == 3
    assert snapshot(ddb, rollups_table, workload) == expected
    ddb.delete_table(TableName=reference)


# ------------------------------------------------------------------------------------ rebuild
def test_rebuild_finds_a_lost_batch_and_adds_exactly_what_is_missing(
    ddb: Any, rollups_table: str, workload: Workload
) -> None:
    table_name = workload.table
    consumer = make_consumer(ddb, rollups_table)
    parts = batches(workload.records, 10)
    lost = parts[1]  # a batch the mapping gave up on
    for batch in parts:
        if batch is not lost:
            assert deliver(consumer, batch) == {"batchItemFailures": []}
    lost_inserts = sum(1 for record in lost if record["eventName"] == "INSERT")
    assert lost_inserts > 0

    found = rebuild(ddb, table_name, rollups_table, 4, workload.since_ms, workload.until_ms)
    accepted_gap = sum(
        d.missing for d in found.differences if d.figure == "accepted" and d.grain is Grain.MINUTE
    )
    assert accepted_gap == lost_inserts
    assert found.items_read >= len(workload.request_ids)

    fixed = rebuild(ddb, table_name, rollups_table, 4, workload.since_ms, workload.until_ms, apply=True)
    assert fixed.corrections_written > 0
    after = rebuild(ddb, table_name, rollups_table, 4, workload.since_ms, workload.until_ms)
    assert after.missing == 0
    totals = reader(ddb, rollups_table).total(workload.since_ms, workload.until_ms)
    assert totals.counts[Transition.ACCEPTED] == len(workload.request_ids)


def test_rebuild_refuses_an_inverted_range(ddb: Any, table_name: str, rollups_table: str) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        rebuild(ddb, table_name, rollups_table, 4, 2_000, 1_000)


def test_lambda_handler_reads_its_table_from_the_environment(
    ddb: Any, dynamodb_endpoint: str, rollups_table: str, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamdesk_rollups import handler

    for name, value in {
        "ROLLUPS_TABLE": rollups_table,
        "ROLLUP_WRITE_SHARDS": "4",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }.items():
        monkeypatch.setenv(name, value)
    assert handler.lambda_handler({"Records": workload.records}, lambda_context()) == {
        "batchItemFailures": []
    }
    totals = reader(ddb, rollups_table).total(workload.since_ms, workload.until_ms)
    assert totals.counts[Transition.ACCEPTED] == len(workload.request_ids)


def test_a_consumer_killed_mid_batch_then_redelivered_counts_everything_once(
    ddb: Any, dynamodb_endpoint: str, rollups_table: str, workload: Workload, tmp_path: Path
) -> None:
    reference = create_rollups_table(ddb, f"{rollups_table}-ref")
    expected = apply_cleanly(ddb, reference, workload)
    records_path, config = tmp_path / "records.json", tmp_path / "child.json"
    records_path.write_text(json.dumps(workload.records), encoding="utf-8")
    config.write_text(
        json.dumps(
            {
                "endpoint": dynamodb_endpoint,
                "table": rollups_table,
                "records": str(records_path),
                "pause": 0.1,
            }
        ),
        encoding="utf-8",
    )
    child = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "tests" / "fixtures_lambda" / "rollups_child.py"), str(config)],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_ledger_entries(ddb, rollups_table)) < 10:  # a few transactions are in
            assert child.poll() is None, "the consumer finished before the kill"
            assert time.monotonic() < deadline, "the consumer applied nothing"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert snapshot(ddb, rollups_table, workload) != expected  # killed part-way

    # The mapping re-sends the batch (no response came back), to a fresh instance.
    assert deliver(make_consumer(ddb, rollups_table), workload.records) == {"batchItemFailures": []}
    assert snapshot(ddb, rollups_table, workload) == expected
    ddb.delete_table(TableName=reference)


def test_after_a_mixed_run_with_a_kill_mid_batch_counts_are_exact_and_percentiles_within_2_percent(
    ddb: Any, dynamodb_endpoint: str, table_name: str, rollups_table: str, tmp_path: Path
) -> None:
    """The issue's test: a mixed run (successes, permanent and transient failures, cancels, resolves), the
    consumer SIGKILLed mid-batch and the batch re-sent; then the rollups' counts equal a recount over the
    items exactly, and their p50/p95/p99 are within 2 % of the percentiles of the items' own latencies."""
    w = run_workload(
        ddb, dynamodb_endpoint, table_name, requests=80, redrives=0, cancels=3, resolves=3, seed=5
    )
    child = _start_slow_consumer(dynamodb_endpoint, rollups_table, w, tmp_path)
    _kill_after_some_transactions(ddb, rollups_table, child)
    assert deliver(make_consumer(ddb, rollups_table), w.records) == {"batchItemFailures": []}

    items = assert_counts_equal_the_items(ddb, rollups_table, w)
    totals = reader(ddb, rollups_table).total(w.since_ms, w.until_ms)
    finished = [i for i in items if i[item.STATUS]["S"] in (Status.SUCCEEDED, *item.FAILED_OUTCOMES)]
    assert any(i[item.STATUS]["S"] == Status.RESOLVED for i in finished)
    stages = {  # no redrives in this run: every item's latest attempt is its only finish
        Stage.QUEUE_WAIT: [int(i[item.STARTED_AT]["N"]) - int(i[item.CREATED_AT]["N"]) for i in finished],
        Stage.PROCESSING: [int(i[item.FINISHED_AT]["N"]) - int(i[item.STARTED_AT]["N"]) for i in finished],
        Stage.END_TO_END: [int(i[item.FINISHED_AT]["N"]) - int(i[item.CREATED_AT]["N"]) for i in finished],
    }
    for stage, values in stages.items():
        ordered = sorted(values)
        assert totals.sketches[stage].count == len(ordered)
        for q in (0.5, 0.95, 0.99):
            exact = ordered[math.floor(q * (len(ordered) - 1))]  # the order statistic (docs/rollups.md)
            estimate = totals.sketches[stage].quantile(q)
            assert estimate is not None
            assert abs(estimate - exact) <= 0.02 * exact + 1e-9, (stage, q, exact, estimate)


def _start_slow_consumer(endpoint: str, table: str, w: Workload, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The consumer applying the whole stream as one batch in a process of its own, slowly."""
    records_path, config = tmp_path / "records.json", tmp_path / "child.json"
    records_path.write_text(json.dumps(w.records), encoding="utf-8")
    settings = {"endpoint": endpoint, "table": table, "records": str(records_path), "pause": 0.1}
    config.write_text(json.dumps(settings), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "tests" / "fixtures_lambda" / "rollups_child.py"), str(config)],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_after_some_transactions(ddb: Any, table: str, child: subprocess.Popen[bytes]) -> None:
    try:
        deadline = time.monotonic() + 60
        while len(_ledger_entries(ddb, table)) < 10:  # a few transactions are in
            assert child.poll() is None, "the consumer finished before the kill"
            assert time.monotonic() < deadline, "the consumer applied nothing"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL


def _ledger_entries(ddb: Any, table: str) -> list[dict[str, Any]]:
    return [entry for entry in ddb.scan(TableName=table)["Items"] if entry["pk"]["S"].startswith("ledger:")]
