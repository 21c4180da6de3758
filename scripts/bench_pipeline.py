"""Benchmark: the request path and the pipeline, each against a baseline measured in the same run.

    python scripts/bench_pipeline.py [--requests 200] [--rate 10]

Starts its own in-memory DynamoDB Local, the API twin and the trigger twin with the real processor, then:
- acknowledgement: ``PUT /requests`` through the API twin (VTL render + UpdateItem) versus the raw PutItem of
  the same item with boto3 (the floor any design must pay), median and p99, and their ratio;
- pipeline: for every request, accepted -> started (queue wait through the stream and the trigger),
  started -> finished (the processor), accepted -> finished, read back from the items' own timestamps;
  p50 and p99 next to the published AWS figure for DynamoDB Streams to Lambda (p50 213 ms, p99 552 ms).
Absolute times drift on shared machines; compare the ratios. No assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.*, when run as a script

from streamdesk_processor import item as attr

from backend.local.trigger import run_trigger
from scripts.bench_stack import bench_stack
from tests.api_fixtures import running_api

AWS_STREAM_TO_LAMBDA_P50_MS = 213
AWS_STREAM_TO_LAMBDA_P99_MS = 552


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def describe(name: str, values: list[float]) -> str:
    return f"  {name:<38} p50 {statistics.median(values):8.1f} ms   p99 {percentile(values, 99):8.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--rate", type=float, default=10.0, help="requests a second (default 10, under what one shard drains)"
    )
    args = parser.parse_args()
    count = args.requests

    with bench_stack("streamdesk-bench") as (settings, template, ddb):
        table = settings.table
        body = json.dumps({"order": 1, "items": ["book", "pen"], "note": "benchmark"})

        # Baseline: the raw PutItem of the same item the API writes.
        raw: list[float] = []
        for _ in range(count):
            now = int(time.time() * 1000)
            started = time.perf_counter()
            ddb.put_item(
                TableName=f"{table}",
                Item={
                    attr.ID: {"S": f"raw-{uuid.uuid4().hex}"}, attr.REQUEST: {"S": body},
                    attr.STATUS: {"S": "BASELINE"}, attr.CREATED_AT: {"N": str(now)},
                },
                ConditionExpression="attribute_not_exists(id)",
            )  # fmt: skip
            raw.append((time.perf_counter() - started) * 1000)

        stop = threading.Event()
        trigger = threading.Thread(target=run_trigger, args=(settings, template, stop), daemon=True)
        trigger.start()
        acknowledged: list[float] = []
        ids: list[str] = []
        with (
            running_api(settings, template) as base_url,
            httpx.Client(base_url=base_url, headers={"x-api-key": settings.api_key}, timeout=30) as http,
        ):
            for _ in range(count):
                started = time.perf_counter()
                answer = http.put("/requests", content=body, headers={"content-type": "application/json"})
                acknowledged.append((time.perf_counter() - started) * 1000)
                ids.append(answer.json()["id"])
                time.sleep(1.0 / args.rate)  # a steady trickle: latency, not a saturated queue
            deadline = time.monotonic() + 120
            items = []
            for request_id in ids:
                while True:
                    found = ddb.get_item(TableName=table, Key={attr.ID: {"S": request_id}})["Item"]
                    if found[attr.STATUS]["S"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
                        items.append(found)
                        break
                    time.sleep(0.05)
        stop.set()
        trigger.join(timeout=15)

        def stage(start: str, end: str) -> list[float]:
            return [float(int(i[end]["N"]) - int(i[start]["N"])) for i in items if start in i and end in i]

        finished = sum(1 for i in items if attr.FINISHED_AT in i)
        print(f"{count} requests, {finished} finished\n")
        print("acknowledgement (client side)")
        print(describe("raw PutItem (boto3, baseline)", raw))
        print(describe("PUT /requests through the API twin", acknowledged))
        ratio = statistics.median(acknowledged) / statistics.median(raw)
        print(f"  ratio API / raw PutItem: p50 {ratio:.2f}x\n")
        print("pipeline (from the items' timestamps)")
        queue = stage(attr.CREATED_AT, attr.STARTED_AT)
        print(describe("accepted -> started (stream + trigger)", queue))
        print(describe("started -> finished (processor)", stage(attr.STARTED_AT, attr.FINISHED_AT)))
        print(describe("accepted -> finished", stage(attr.CREATED_AT, attr.FINISHED_AT)))
        print(
            f"  AWS published, Streams -> Lambda: p50 {AWS_STREAM_TO_LAMBDA_P50_MS} ms, "
            f"p99 {AWS_STREAM_TO_LAMBDA_P99_MS} ms; local queue wait p50 ratio "
            f"{statistics.median(queue) / AWS_STREAM_TO_LAMBDA_P50_MS:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
