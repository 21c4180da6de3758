"""Test-only Lambda handlers for the trigger twin, loaded by handler string from this directory.

Each invocation is appended to the JSONL file named by ``FIXTURE_RECORD_PATH`` (set through the
function's Environment, so the environment path is exercised too). What a record asks for is read from
its item's ``mode`` attribute (NewImage, else OldImage):

* ``raise``: the invocation raises (a whole-batch function error);
* ``partial-fail``: the record is reported in ``batchItemFailures`` every time;
* ``partial-fail-once``: reported the first time this process sees the record only;
* ``bad-identifier``: the response names an empty ``itemIdentifier`` (Lambda: the whole batch failed);
* ``touch``: the handler sets ``touched`` on the item through boto3's default client, which only works
  if TABLE_NAME, the endpoint, the region and the credentials were set as the function's environment.

``FIXTURE_DELAY_SECONDS`` makes every invocation take that long (the crash test kills mid-stream).
``FIXTURE_BARRIER_PARTIES``: the first that many invocations wait for each other (5 s at most, then the
invocation raises): they all return only if they were in flight at the same time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from typing import Any

import boto3

SEEN: Counter[str] = Counter()  # eventID -> deliveries seen by this process
_BARRIERS: dict[str, threading.Barrier] = {}  # record path -> the barrier of that test
_BARRIER_ENTRIES: Counter[str] = Counter()
_BARRIER_LOCK = threading.Lock()
_ENV_NAMES = (
    "TABLE_NAME",
    "MAX_RETRIES",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
)


def _meet_concurrent_invocations() -> None:
    parties = int(os.environ.get("FIXTURE_BARRIER_PARTIES", "0"))
    key = os.environ.get("FIXTURE_RECORD_PATH", "")
    if not parties:
        return
    with _BARRIER_LOCK:
        barrier = _BARRIERS.setdefault(key, threading.Barrier(parties, timeout=5))
        _BARRIER_ENTRIES[key] += 1
        if _BARRIER_ENTRIES[key] > parties:
            return
    barrier.wait()  # BrokenBarrierError: fewer invocations than that were in flight together


def _mode(record: dict[str, Any]) -> str:
    image = record["dynamodb"].get("NewImage") or record["dynamodb"].get("OldImage") or {}
    return str(image.get("mode", {}).get("S", ""))


def _record_invocation(event: dict[str, Any], context: Any) -> None:
    path = os.environ.get("FIXTURE_RECORD_PATH")
    if not path:
        return
    entry = {
        "pid": os.getpid(),
        "records": event["Records"],
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
        "env": {name: os.environ.get(name) for name in _ENV_NAMES},
    }
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event["Records"]
    _record_invocation(event, context)
    modes = [_mode(r) for r in records]
    first_sight = {r["eventID"]: SEEN[r["eventID"]] == 0 for r in records}
    for record in records:
        SEEN[record["eventID"]] += 1

    _meet_concurrent_invocations()
    delay = float(os.environ.get("FIXTURE_DELAY_SECONDS", "0"))
    if delay:
        time.sleep(delay)
    if "raise" in modes:
        raise RuntimeError("a record asked the handler to raise")
    if "bad-identifier" in modes:
        return {"batchItemFailures": [{"itemIdentifier": ""}]}
    for record, mode in zip(records, modes, strict=True):
        if mode == "touch":
            boto3.client("dynamodb").update_item(
                TableName=os.environ["TABLE_NAME"],
                Key=record["dynamodb"]["Keys"],
                UpdateExpression="SET touched = :t",
                ExpressionAttributeValues={":t": {"BOOL": True}},
            )
    failures = [
        {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
        for r, mode in zip(records, modes, strict=True)
        if mode == "partial-fail" or (mode == "partial-fail-once" and first_sight[r["eventID"]])
    ]
    return {"batchItemFailures": failures}
