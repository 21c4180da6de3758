"""Chaos under the supervisor: a mixed load with retrying clients (long requests among them, handed off to
the slow lane) while DynamoDB Local, the API, the trigger, the SQS twin and the slow-work event source are
each killed with SIGKILL mid-batch. Afterwards every acknowledged request is there and finished
with the outcome it asked for, no completed step ran twice, every key made exactly one request, and the
stack came back by itself.

`make test` runs one round; `make chaos` runs more (STREAMDESK_CHAOS_ROUNDS) with more requests.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from streamdesk_rollups.schema import Transition

from backend.local.dynamodb_local import client as dynamodb_client
from backend.local.dynamodb_local import free_port
from backend.local.esm_config import load_esm_config
from backend.rollups.reader import RollupReader
from backend.rollups.rebuild import rebuild
from backend.stack_restarts import read_restarts
from backend.template import ROLLUPS_FUNCTION_ID, ROLLUPS_TABLE_ID, TABLE_ID, LocalValues, Template
from tests.e2e.test_local_stack import Stack, _child_pid, start_stack, stop_stack
from tests.processor_events import read_stream_records

ROUNDS = int(os.environ.get("STREAMDESK_CHAOS_ROUNDS", "1"))
REQUESTS_PER_ROUND = int(os.environ.get("STREAMDESK_CHAOS_REQUESTS", "30"))
TABLE = "streamdesk-e2e"
PACE_SECONDS = 0.5  # between two new requests
# What the supervisor's children run, as `ps` shows them.
VICTIMS = {
    "api": "backend.cli api",
    "trigger": "backend.cli trigger --function ProcessorFunction",
    "rollups": "backend.cli trigger --function RollupsFunction",
    "slow-work": "backend.cli slow-work",
    "sqs": "backend.cli sqs",
    "dynamodb": "java -Xms64m",
}
# A short timeout and visibility timeout, so that a message the killed worker held comes back within
# seconds (the template's 60 s and 360 s would hold it for six minutes); the rest is the template's.
SLOW_LANE_PARAMETERS = {"SlowWorkTimeoutSeconds": "5", "SlowWorkVisibilityTimeoutSeconds": "6"}
AMBIGUOUS = (httpx.TransportError,)
ROLLUPS_TEMPLATE = Template.load(
    local=LocalValues(refs={TABLE_ID: TABLE, ROLLUPS_TABLE_ID: f"{TABLE}-rollups"})
)


@dataclass(frozen=True)
class Order:
    key: str
    body: bytes
    expect: str  # SUCCEEDED | FAILED
    transient: bool = False


def _orders(count: int, seed: int) -> list[Order]:
    chooser = random.Random(seed)
    orders = []
    for n in range(count):
        kind = chooser.choice(["ok", "ok", "declined", "flaky", "long", "long-flaky"])
        simulate: dict[str, Any] = {"delayMs": 200}  # batches take a while: kills land mid-batch
        if kind.startswith("long"):
            simulate["delayMs"] = 1200  # at the template's SlowWorkThresholdMs or above: the slow lane
        if kind == "declined":
            simulate.update(fail="card declined", failAtStep=2)
        elif kind.endswith("flaky"):
            simulate.update(fail="gateway timeout", transient=True, failTimes=1, failAtStep=3)
        body = json.dumps({"order": n, "simulate": simulate}, sort_keys=True).encode()
        orders.append(
            Order(
                str(uuid.uuid4()),
                body,
                "FAILED" if kind == "declined" else "SUCCEEDED",
                kind.endswith("flaky"),
            )
        )
    return orders


def _put_until_answered(stack: Stack, order: Order, start_at: float, deadline: float) -> tuple[str, int]:
    """A client that retries every ambiguous PUT with its key: (id, how many PUTs it took)."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    headers = {"x-api-key": stack.key, "Idempotency-Key": order.key, "content-type": "application/json"}
    attempts = 0
    wait = 0.2
    while True:
        attempts += 1
        try:
            answer = httpx.put(f"{stack.api_url}/requests", content=order.body, headers=headers, timeout=10)
        except AMBIGUOUS:
            answer = None
        if answer is not None and answer.status_code == 202:
            return str(answer.json()["id"]), attempts
        if answer is not None and answer.status_code < 500 and answer.status_code != 429:
            raise AssertionError(f"refused: {answer.status_code} {answer.text}")
        assert time.monotonic() < deadline, f"never acknowledged after {attempts} tries"
        time.sleep(wait)
        wait = min(wait * 2, 2.0)


def _final(stack: Stack, request_id: str, deadline: float) -> dict[str, Any]:
    while True:
        try:
            body = httpx.get(
                f"{stack.api_url}/requests/{request_id}", headers={"x-api-key": stack.key}, timeout=10
            ).json()
            if body.get("status") in ("SUCCEEDED", "FAILED"):
                return dict(body)
        except (httpx.TransportError, ValueError):
            pass
        assert time.monotonic() < deadline, f"{request_id} did not finish"
        time.sleep(0.3)


def _wait_mid_batch(ddb: Any, slow_lane: bool = False) -> None:
    """Until the processor holds a request (PROCESSING): a batch is running (``slow_lane``: a slow-work
    delivery holds one, under its lease)."""
    deadline = time.monotonic() + 30
    condition = "#s = :p AND attribute_exists(leaseUntil)" if slow_lane else "#s = :p"
    while True:
        try:
            page = ddb.scan(
                TableName=TABLE,
                FilterExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":p": {"S": "PROCESSING"}},
                Select="COUNT",
            )
            if page["Count"]:
                return
        except Exception:  # the table restarting
            pass
        assert time.monotonic() < deadline, "no batch was running to kill"
        time.sleep(0.05)


def _kill_and_wait_back(stack: Stack, name: str, seen_back: int) -> None:
    os.kill(_child_pid(stack, VICTIMS[name]), signal.SIGKILL)
    deadline = time.monotonic() + 90
    while stack.output().count(f"{name} is back") <= seen_back:
        assert stack.process.poll() is None, stack.output()[-4000:]
        assert time.monotonic() < deadline, f"{name} did not come back:\n{stack.output()[-4000:]}"
        time.sleep(0.2)


def _load_with_kills(
    stack: Stack, ddb: Any, orders: list[Order], round_number: int
) -> dict[str, tuple[str, int]]:
    """Send ``orders`` from 6 clients while the six components are killed one after another, each
    while a batch is running (the API's while PUTs are in flight)."""
    deadline = time.monotonic() + 240
    answers: dict[str, tuple[str, int]] = {}
    with ThreadPoolExecutor(max_workers=6) as pool:
        # Paced over the kills, so that PUTs meet a dead API and a dead table.
        start = time.monotonic()
        futures = {
            o.key: pool.submit(_put_until_answered, stack, o, start + n * PACE_SECONDS, deadline)
            for n, o in enumerate(orders)
        }
        for name in ("trigger", "rollups", "slow-work", "sqs", "dynamodb", "api"):
            _wait_mid_batch(ddb, slow_lane=name in ("slow-work", "sqs"))
            _kill_and_wait_back(stack, name, seen_back=round_number)
        for key, future in futures.items():
            answers[key] = future.result()
    return answers


def _healed_and_said_so(stack: Stack, data_dir: Path) -> None:
    output = stack.output()
    assert "exit code -9" not in output
    for name in VICTIMS:
        # The first death restarts after 0.5 s; more within a minute back off (make chaos).
        assert f"{name} killed by SIGKILL; restarting it in 0.5 s" in output, name
        assert output.count(f"{name} killed by SIGKILL; restarting it in ") == ROUNDS, name
    assert "the trigger resumes from its checkpoint" in output
    assert "the trigger waits for the table, spending no retries" in output
    restarts = read_restarts(data_dir)
    assert restarts is not None
    for name in VICTIMS:
        component = restarts.component(name)
        assert component.restarts == ROUNDS and component.state == "running", (name, component)
        assert component.last_exit == "killed by SIGKILL"
    assert restarts.component("dashboard").restarts == 0
    # No batch was given up on: the outage of the table spent no retries.
    assert not (data_dir / "trigger" / "failure-destination.jsonl").exists()


def _step_writes(endpoint: str) -> Counter[tuple[str, str]]:
    writes: Counter[tuple[str, str]] = Counter()
    for record in read_stream_records(endpoint, TABLE):
        new = record["dynamodb"].get("NewImage", {}).get("steps", {}).get("M", {})
        old = record["dynamodb"].get("OldImage", {}).get("steps", {}).get("M", {})
        for step, entry in new.items():
            if old.get(step) != entry:
                writes[(record["dynamodb"]["Keys"]["id"]["S"], step)] += 1
    return writes


def _rollups_match_a_recount(ddb: Any, since_ms: int, orders: int) -> None:
    """Until the rollups trigger has caught up: its counts equal a recount from the items exactly (a
    record counted twice stays above the recount, and the deadline fails the test)."""
    shards = int(
        load_esm_config(ROLLUPS_TEMPLATE, function_id=ROLLUPS_FUNCTION_ID).function.environment[
            "ROLLUP_WRITE_SHARDS"
        ]
    )
    deadline = time.monotonic() + 90
    while True:
        until_ms = int(time.time() * 1000) + 60_000
        try:
            report = rebuild(ddb, TABLE, f"{TABLE}-rollups", shards, since_ms, until_ms)
            accepted = RollupReader(ddb, f"{TABLE}-rollups", shards).total(since_ms, until_ms).counts
        except Exception:  # a moment of the table restarting
            report, accepted = None, {}
        if report is not None and report.differences == [] and accepted[Transition.ACCEPTED] == orders:
            return
        assert time.monotonic() < deadline, report.differences[:10] if report else "no report"
        time.sleep(0.5)


def test_sigkill_each_component_mid_batch_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    since_ms = int(time.time() * 1000) - 60_000
    ports = {"api": free_port(), "dynamodb": free_port(), "dashboard": free_port(), "sqs": free_port()}
    stack = start_stack(tmp_path / "data", ports, tmp_path / "up.log", SLOW_LANE_PARAMETERS)
    try:
        ddb = dynamodb_client(f"http://127.0.0.1:{ports['dynamodb']}", timeout=2.0)
        orders: list[Order] = []
        answers: dict[str, tuple[str, int]] = {}
        for round_number in range(ROUNDS):
            batch = _orders(REQUESTS_PER_ROUND, seed=round_number)
            orders += batch
            answers.update(_load_with_kills(stack, ddb, batch, round_number))
        deadline = time.monotonic() + 180
        finals = {o.key: _final(stack, answers[o.key][0], deadline) for o in orders}

        # Every acknowledged request is there, finished as it asked; the transient ones were retried.
        for order in orders:
            final = finals[order.key]
            assert final["status"] == order.expect, (order, final)
            if order.expect == "FAILED":
                assert final["error"]["message"] == "card declined"
            if order.transient:
                assert final["attempts"] >= 2
        # One request per key, however many PUTs a client needed; nothing else in the table.
        items = ddb.scan(TableName=TABLE, ConsistentRead=True, ProjectionExpression="id")["Items"]
        assert sorted(i["id"]["S"] for i in items) == sorted(answers[o.key][0] for o in orders)
        # No completed step ran twice (each step recorded once per request in the stream).
        writes = _step_writes(f"http://127.0.0.1:{ports['dynamodb']}")
        assert [key for key, count in writes.items() if count > 1] == []
        # The rollups consumer, killed mid-run too, counted every record once.
        _rollups_match_a_recount(ddb, since_ms, len(orders))
        # The stack healed by itself, said truly what happened, and still serves.
        assert stack.process.poll() is None
        _healed_and_said_so(stack, tmp_path / "data")
        # The long ones went through the slow lane, and the worker killed mid-step was taken over.
        assert "hand-off claimed" in stack.output()
        retried = sum(1 for _, tries in answers.values() if tries > 1)
        print(f"chaos: {len(orders)} requests, {retried} needed more than one PUT")
        assert stop_stack(stack) == 0
    finally:
        if stack.process.poll() is None:
            stack.process.kill()
            stack.process.wait()
