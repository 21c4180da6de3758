"""Benchmark: what an Idempotency-Key costs, against a PUT without one, measured in the same run.

    python scripts/bench_idempotency.py [--requests 300]

Starts its own in-memory DynamoDB Local and the API twin, then sends ``--requests`` PUTs of each kind,
interleaved: without a key (the baseline), each with a new key, and retries of one stored request with its
key. Prints the client-side median and p99 of each, their ratios to the baseline, and, from a separate
run of each kind, what it wrote: items in the table and records in its stream (a retry writes neither).
Absolute times drift on shared machines; compare the ratios and the counts. No assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path
from time import perf_counter

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.*, when run as a script

from scripts.bench_stack import bench_stack
from tests.api_fixtures import running_api
from tests.processor_events import read_stream_records

BODY = b'{"order": 1, "items": ["book", "pen"], "note": "benchmark"}'


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed_puts(http: httpx.Client, keys: list[str] | list[None] | list[str | None]) -> list[float]:
    times = []
    for key in keys:
        headers = {"content-type": "application/json"} | ({"Idempotency-Key": key} if key else {})
        started = perf_counter()
        answer = http.put("/requests", content=BODY, headers=headers)
        times.append((perf_counter() - started) * 1000)
        assert answer.status_code == 202, answer.text
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    count = parser.parse_args().requests
    with bench_stack("streamdesk-bench-idempotency") as (settings, template, ddb):
        table = settings.table

        def writes() -> tuple[int, int]:
            items = ddb.scan(TableName=table, Select="COUNT")["Count"]
            return items, len(read_stream_records(settings.dynamodb_url, table))

        names = ("no key (baseline)", "a new key each", "retries of one key")
        times: dict[str, list[float]] = {name: [] for name in names}
        written: dict[str, tuple[int, int]] = {}
        with (
            running_api(settings, template) as base_url,
            httpx.Client(base_url=base_url, headers={"x-api-key": settings.api_key}, timeout=30) as http,
        ):
            timed_puts(http, [None] * 20)  # warm-up (not counted)
            timed_puts(http, ["retried-key"])  # the request the retries repeat
            # Interleaved, so that drift of a shared machine hits every kind alike.
            for _ in range(count):
                times[names[0]] += timed_puts(http, [None])
                times[names[1]] += timed_puts(http, [str(uuid.uuid4())])
                times[names[2]] += timed_puts(http, ["retried-key"])
            # What each kind wrote, measured on its own.
            for name, keys in (
                (names[0], [None] * count),
                (names[1], [str(uuid.uuid4()) for _ in range(count)]),
                (names[2], ["retried-key"] * count),
            ):
                before = writes()
                timed_puts(http, keys)
                after = writes()
                written[name] = (after[0] - before[0], after[1] - before[1])
        results = {name: (times[name], written[name]) for name in names}
        baseline = statistics.median(results["no key (baseline)"][0])
        print(f"{count} PUTs of each kind through the API twin\n")
        for name, (kind_times, (items, records)) in results.items():
            median = statistics.median(kind_times)
            print(
                f"  {name:<20} p50 {median:6.2f} ms  p99 {percentile(kind_times, 99):6.2f} ms  "
                f"ratio {median / baseline:4.2f}x   items +{items:<5} stream records +{records}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
