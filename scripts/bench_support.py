"""Benchmark: the support workflow's writes, each against a baseline measured in the same run.

    python scripts/bench_support.py [--requests 200]

Starts its own in-memory DynamoDB Local and the API twin (no trigger: the requests stay PENDING), then:
- cancel: ``DELETE /requests/{id}`` through the API twin (VTL render + conditional UpdateItem) versus the
  raw conditional UpdateItem of the same change with boto3, median and p99, and their ratio;
- calls: how many DynamoDB calls each action makes, counted on the client (a count does not drift):
  a cancel and a resolve from the backend, a resolve of a group of N, a note.
Absolute times drift on shared machines; compare the ratios. No assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.*, when run as a script

from streamdesk_processor import item as attr
from streamdesk_processor.item import ResolveReason

from backend.local.apigateway import ApiDefinition
from backend.roles import Actor, Role
from backend.store.actions import RequestActions
from scripts.bench_stack import bench_stack
from tests.api_fixtures import running_api
from tests.integration.test_request_actions import make_failed
from tests.processor_events import put_pending_item

OPERATOR = Actor("bench", Role.OPERATOR)
COUNTER = "bench-support-call-counter"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def describe(name: str, values: list[float]) -> str:
    return f"  {name:<44} p50 {statistics.median(values):8.1f} ms   p99 {percentile(values, 99):8.1f} ms"


def raw_cancel(ddb: Any, table: str, request_id: str) -> None:
    """The same change as the DELETE route's VTL, written directly (the floor any design pays)."""
    now = int(time.time() * 1000)
    ddb.update_item(
        TableName=table,
        Key={attr.ID: {"S": request_id}},
        UpdateExpression="SET #s = :c, #b = :b, #u = :now, #f = :now, #ttl = :ttl, "
        "#trail = list_append(if_not_exists(#trail, :none), :entry)",
        ConditionExpression="#s = :p",
        ExpressionAttributeNames={
            "#s": attr.STATUS, "#b": attr.STATE_BUCKET, "#u": attr.UPDATED_AT, "#f": attr.FINISHED_AT,
            "#ttl": attr.TTL, "#trail": attr.TRAIL,
        },
        ExpressionAttributeValues={
            ":p": {"S": "PENDING"}, ":c": {"S": "CANCELLED"}, ":b": {"S": "CANCELLED:0"},
            ":now": {"N": str(now)}, ":ttl": {"N": str(now // 1000 + 30 * 86_400)}, ":none": {"L": []},
            ":entry": {"L": [{"M": {attr.TRAIL_AT: {"N": str(now)}, attr.TRAIL_BY: {"S": "api"}}}]},
        },
        ReturnValues="UPDATED_NEW",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )  # fmt: skip


def counted(ddb: Any) -> Counter[str]:
    """A counter of the DynamoDB operations ``ddb`` makes from now on."""
    calls: Counter[str] = Counter()
    ddb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.update([model.name]), unique_id=COUNTER
    )
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    count = args.requests
    with bench_stack("streamdesk-bench-support") as (settings, template, ddb):
        table = settings.table

        for request_id in [put_pending_item(ddb, table, {"n": n}) for n in range(20)]:
            raw_cancel(ddb, table, request_id)  # warm-up: DynamoDB Local's JIT, connections
        raw: list[float] = []
        for request_id in [put_pending_item(ddb, table, {"n": n}) for n in range(count)]:
            started = time.perf_counter()
            raw_cancel(ddb, table, request_id)
            raw.append((time.perf_counter() - started) * 1000)

        through_api: list[float] = []
        ids = [put_pending_item(ddb, table, {"n": n}) for n in range(count)]
        with (
            running_api(settings, template) as base_url,
            httpx.Client(base_url=base_url, headers={"x-api-key": settings.api_key}, timeout=30) as http,
        ):
            for request_id in ids:
                started = time.perf_counter()
                answer = http.delete(f"/requests/{request_id}")
                through_api.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text

        print(f"{count} cancels each way\n")
        print("cancel (client side)")
        print(describe("raw conditional UpdateItem (boto3, baseline)", raw))
        print(describe("DELETE /requests/{id} through the API twin", through_api))
        ratio = statistics.median(through_api) / statistics.median(raw)
        print(f"  ratio API / raw UpdateItem: p50 {ratio:.2f}x\n")

        actions = RequestActions(ddb, table)
        pending, failed = put_pending_item(ddb, table, {"n": 1}), make_failed(ddb, table)
        group = [make_failed(ddb, table) for _ in range(25)]
        print("DynamoDB calls per action (counted on the client)")
        for name, run in (
            ("cancel one (backend)", lambda: actions.cancel(pending, OPERATOR)),
            ("resolve one", lambda: actions.resolve(failed, ResolveReason.DUPLICATE, "", OPERATOR)),
            (
                "resolve a group of 25",
                lambda: actions.resolve_many(group, ResolveReason.DUPLICATE, "", OPERATOR),
            ),
            ("note", lambda: actions.add_note(pending, "T-1", OPERATOR)),
        ):
            calls = counted(ddb)
            run()
            ddb.meta.events.unregister("before-call.dynamodb.*", unique_id=COUNTER)
            print(f"  {name:<44} " + ", ".join(f"{n} {op}" for op, n in sorted(calls.items())))
        found = ApiDefinition.from_template(template).find_route("DELETE", "/requests/x")
        action = found[0].integration.action if found else "(no route)"
        print(f"  {'DELETE /requests/{id} (its one integration)':<44} 1 {action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
