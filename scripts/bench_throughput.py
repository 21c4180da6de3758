"""Benchmark: ingest and drain throughput of the local stack, each against a ceiling measured in the same run.

    python scripts/bench_throughput.py [--backlog 600] [--seconds 4] [--rounds 3]

Starts its own in-memory DynamoDB Local and the API twin as ``streamdesk api`` (its own process, as
``make up`` runs it), then reports:

- ingest: ``PUT /requests`` through the API twin against raw ``PutItem`` calls of the same item, both at 8
  and at 32 concurrent clients (threads in this process), in requests a second, and their ratio;
- engine ceiling: raw ``UpdateItem`` calls a second at the processor's concurrency, on a fresh table right
  before and right after each plain drain (their mean is that round's ceiling; the median ratio of
  ``--rounds`` rounds is reported); and the same writes with the two indexes' keys set as well, as every
  processor write updates them (what index upkeep costs the engine);
- every phase runs on a table of its own, deleted after it; ingest on a DynamoDB Local of its own, stopped
  before the drains;
- writes per request: DynamoDB writes (PutItem + UpdateItem) the pipeline spent per finished request,
  counted on the processor's client (they do not drift);
- drain: a backlog of plain requests, then of a mixed load (mostly plain, some with 50-300 ms of work, a few
  transient and permanent failures), is accepted first and then drained by the trigger twin with the real
  processor; the sustained drain rate is requests finished a second while a backlog remains (the highest
  request rate at which the backlog stays bounded), and its ratio to ceiling / writes per request;
- latency: the plain load sent at half the plain drain rate, accepted -> finished p50/p99 from the items'
  own timestamps;
- head-of-line: the same load with one 5 s request sent first; how much later p99 of the requests accepted
  after it exceeds the p99 without it; once with the slow lane (the 5 s request is handed off to the
  SQS twin and the slow-work event source, as ``make up`` runs them) and once without it (its threshold
  set above any request's delay, so the 5 s run in the stream's ordered path, as before).
Absolute numbers drift on shared machines; compare the ratios. No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streamdesk_processor import item as attr

from backend.local.dynamodb_local import DynamoDBLocal, free_port
from backend.local.slow_lane_stack import slow_lane_in_process
from backend.local.table import ensure_table
from backend.local.trigger import run_trigger
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY, Settings, load_settings
from backend.template import LocalValues, Template

BODY = json.dumps({"order": 1, "items": ["book", "pen"], "note": "benchmark"})
PROCESSOR_CONCURRENCY_DEFAULT = 16
FINISHED = ("SUCCEEDED", "FAILED")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def ddb_client(endpoint: str, pool: int) -> Any:
    config = Config(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 3})
    return boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name=LOCAL_REGION, aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY, config=config,
    )  # fmt: skip


def rate_of(clients: int, seconds: float, call: Callable[[], object]) -> float:
    """Calls a second that ``clients`` threads achieve, each calling ``call`` in a loop for ``seconds``."""
    counts = [0] * clients
    start = time.perf_counter()
    end = start + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < end:
            call()
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


@contextmanager
def api_process(settings: Settings) -> Iterator[str]:
    """The API twin as ``streamdesk api`` in its own process group; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "STREAMDESK_API_PORT": str(port),
        "STREAMDESK_DYNAMODB_PORT": str(settings.dynamodb_port),
        "STREAMDESK_TABLE": settings.table,
        "STREAMDESK_DATA_DIR": str(settings.data_dir),
        "STREAMDESK_API_KEY": settings.api_key,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "api"], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL,  # its access log: written, as under `make up`, but not shown
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the API twin did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


class Submitter:
    """Sends requests through the API from a pool of threads, each with its own HTTP client."""

    def __init__(self, base_url: str, api_key: str, clients: int) -> None:
        self._local = threading.local()
        self._base_url = base_url
        self._api_key = api_key
        self.pool = ThreadPoolExecutor(clients)

    def _http(self) -> httpx.Client:
        http = getattr(self._local, "http", None)
        if http is None:
            http = httpx.Client(base_url=self._base_url, headers={"x-api-key": self._api_key}, timeout=30)
            self._local.http = http
        return http

    def put(self, body: str = BODY) -> str:
        answer = self._http().put("/requests", content=body, headers={"content-type": "application/json"})
        answer.raise_for_status()
        return str(answer.json()["id"])

    def put_many(self, bodies: list[str]) -> list[str]:
        return list(self.pool.map(self.put, bodies))

    def put_at_rate(self, bodies: list[str], rate: float) -> list[str]:
        """One request every 1/rate seconds (sent without waiting for the previous answer)."""
        futures = []
        start = time.perf_counter()
        for index, body in enumerate(bodies):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(self.pool.submit(self.put, body))
        return [f.result() for f in futures]


def mixed_bodies(count: int, rng: random.Random) -> list[str]:
    """Mostly plain; 20 % with 50-300 ms of work; 5 % a transient failure retried once; 3 % permanent."""
    bodies = []
    for index in range(count):
        roll = rng.random()
        simulate: dict[str, Any] = {}
        if roll < 0.20:
            simulate = {"delayMs": rng.randint(50, 300)}
        elif roll < 0.25:
            simulate = {"fail": "try again", "transient": True, "failTimes": 1, "failAtStep": 2}
        elif roll < 0.28:
            simulate = {"fail": "card declined", "failAtStep": 3}
        bodies.append(json.dumps({"order": index, **({"simulate": simulate} if simulate else {})}))
    return bodies


def wait_finished(ddb: Any, table: str, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """The items once every one is finished (or at the timeout).

    Polls twice a second, and stops a poll at the first batch of 100 that still holds an unfinished one:
    reading the whole backlog five times a second loaded the engine the drain is measured on (the rates
    come from the items' own timestamps, so polling less does not change them).
    """
    deadline = time.monotonic() + timeout
    items: dict[str, dict[str, Any]] = {}
    while True:
        missing = [i for i in ids if i not in items]
        for start in range(0, len(missing), 100):
            keys = [{attr.ID: {"S": i}} for i in missing[start : start + 100]]
            answer = ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
            found = [f for f in answer["Responses"][table] if f[attr.STATUS]["S"] in FINISHED]
            items.update((f[attr.ID]["S"], f) for f in found)
            if len(found) < len(keys):
                break  # more to wait for: the rest is read on a later poll
        if len(items) == len(ids) or time.monotonic() > deadline:
            return [items[i] for i in ids if i in items]
        time.sleep(0.5)


def stamp(found: dict[str, Any], name: str) -> int:
    return int(found[name]["N"])


class WriteCounter:
    """Counts the DynamoDB writes of every boto3 client made from the default session (the processor's)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call.dynamodb.UpdateItem", self._seen)
        boto3.DEFAULT_SESSION.events.register("before-call.dynamodb.PutItem", self._seen)

    def _seen(self, **_kwargs: Any) -> None:
        with self._lock:
            self.count += 1


@contextmanager
def running_trigger(settings: Settings, template: Template) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=run_trigger, args=(settings, template, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def drain(
    settings: Settings, template: Template, submit: Submitter, ddb: Any, bodies: list[str],
    counter: WriteCounter,
) -> tuple[float, float]:  # fmt: skip
    """(requests finished a second while the backlog lasted, processor writes per request)."""
    ids = submit.put_many(bodies)  # the whole backlog is accepted before the trigger starts
    before = counter.count
    with running_trigger(settings, template):
        items = wait_finished(ddb, settings.table, ids, timeout=600)
    first = min(stamp(i, attr.STARTED_AT) for i in items if attr.STARTED_AT in i)
    last = max(stamp(i, attr.FINISHED_AT) for i in items)
    return len(items) / max(0.001, (last - first) / 1000), (counter.count - before) / len(ids)


def latencies(items: list[dict[str, Any]]) -> list[float]:
    return [float(stamp(i, attr.FINISHED_AT) - stamp(i, attr.CREATED_AT)) for i in items]


def bench_settings(port: int, data_dir: Path, table: str, sqs_port: int | None = None) -> Settings:
    return load_settings(
        dynamodb_port=port, table=table, data_dir=data_dir / table, STREAMDESK_API_KEY="bench-key-0123456789",
        sqs_port=sqs_port or free_port(),
    )  # fmt: skip


def ingest(settings: Settings, template: Template, ddb: Any, seconds: float) -> None:
    """API twin against raw PutItem at 8 and 32 clients (a table of its own: nothing drains it)."""

    def raw_put() -> None:
        ddb.put_item(
            TableName=settings.table, ConditionExpression="attribute_not_exists(id)",
            Item={attr.ID: {"S": f"raw-{uuid.uuid4().hex}"}, attr.REQUEST: {"S": BODY},
                  attr.STATUS: {"S": "BASELINE"}, attr.CREATED_AT: {"N": str(time.time_ns() // 10**6)}},
        )  # fmt: skip

    print(f"ingest ({seconds:.0f} s each, requests a second)")
    with api_process(settings) as base_url:
        for clients in (8, 32):
            raw = rate_of(clients, seconds, raw_put)
            submit = Submitter(base_url, settings.api_key, clients)
            api = rate_of(clients, seconds, submit.put)
            print(f"  {clients:>2} clients: raw PutItem {raw:7.1f}/s   API twin {api:7.1f}/s   "
                  f"ratio {api / raw:.2f}x")  # fmt: skip


def engine_ceiling(table: str, ddb: Any, concurrency: int, seconds: float, *, indexed: bool = False) -> float:
    """Raw UpdateItem calls a second (each a new item, conditional, like the processor's writes).

    ``indexed`` also sets the keys of the table's two indexes (byTime, byState), as every processor write
    does (it sets ``updatedAt``, projected into both): a diagnostic of what index upkeep costs the engine.
    """
    names = {"#s": attr.STATUS, "#u": attr.UPDATED_AT}
    values: dict[str, Any] = {":s": {"S": "BASELINE"}, ":u": {"N": "1"}}
    expression = "SET #s = :s, #u = :u"
    if indexed:
        names |= {"#t": attr.TIME_BUCKET, "#b": attr.STATE_BUCKET, "#c": attr.CREATED_AT}
        values |= {":t": {"S": "20419:0"}, ":b": {"S": "PROCESSING:0"}, ":c": {"N": "1"}}
        expression += ", #t = :t, #b = :b, #c = :c"

    def raw_update() -> None:
        ddb.update_item(
            TableName=table, Key={attr.ID: {"S": f"raw-{uuid.uuid4().hex}"}}, UpdateExpression=expression,
            ConditionExpression="attribute_not_exists(#s)", ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )  # fmt: skip

    return rate_of(concurrency, seconds, raw_update)


class Phases:
    """A fresh table (and trigger data directory) for every phase, so nothing an earlier phase wrote (its
    items, its stream, its checkpoints) is in the engine's way or read by a later one."""

    def __init__(self, ddb_local: DynamoDBLocal, data_dir: Path, ddb: Any) -> None:
        self._ddb_local = ddb_local
        self._data_dir = data_dir
        self.ddb = ddb

    @contextmanager
    def table(
        self, name: str, parameters: dict[str, str] | None = None
    ) -> Iterator[tuple[Settings, Template]]:
        """A fresh table for one phase, deleted after it (its items and stream are gone from the engine)."""
        template = Template.load(local=LocalValues(refs={"RequestsTable": name}, parameters=parameters or {}))
        ensure_table(self.ddb, name, template)
        try:
            yield bench_settings(self._ddb_local.port, self._data_dir, name), template
        finally:
            self.ddb.delete_table(TableName=name)

    def ceiling(self, name: str, concurrency: int, seconds: float, *, indexed: bool = False) -> float:
        with self.table(name) as (settings, _):
            return engine_ceiling(settings.table, self.ddb, concurrency, seconds, indexed=indexed)


def pipeline(phases: Phases, concurrency: int, seconds: float, backlog: int, rounds: int) -> None:
    """Rounds of the plain drain, each between two ceilings taken right before and right after it (the
    machine's load drifts within a minute), then the mixed drain and the latencies; a table each."""
    counter = WriteCounter()
    # A fresh engine (a JVM) is several times slower for its first seconds: warm every path up first, so
    # that the first ceiling is not measured on a cold engine.
    phases.ceiling("streamdesk-warm-up", concurrency, seconds)
    run_drain(phases, "streamdesk-warm-up-drain", [BODY] * min(backlog, 100), counter)
    print(f"plain drain (backlog of {backlog} accepted first, then drained) against the engine ceiling: "
          f"raw UpdateItem at {concurrency} concurrent, fresh table, before and after the drain")  # fmt: skip
    results = [plain_round(phases, r, concurrency, seconds, backlog, counter) for r in range(1, rounds + 1)]
    plain_rate = statistics.median(rate for rate, _ in results)
    print(f"  median of {rounds}: plain {plain_rate:.1f}/s, "
          f"ratio {statistics.median(ratio for _, ratio in results):.2f}x")  # fmt: skip
    raw = phases.ceiling("streamdesk-ceiling-raw", concurrency, seconds)
    indexed = phases.ceiling("streamdesk-ceiling-indexed", concurrency, seconds, indexed=True)
    print(f"  the ceiling's writes setting both indexes' keys too (as every processor write does): "
          f"{indexed:.1f}/s against {raw:.1f}/s raw right before = {indexed / raw:.2f}x\n")  # fmt: skip
    mixed_rate, _ = run_drain(phases, "streamdesk-mixed", mixed_bodies(backlog, random.Random(7)), counter)
    print(f"mixed drain: {mixed_rate:7.1f}/s   ratio to plain {mixed_rate / plain_rate:.2f}x\n")
    head_of_line_phases(phases, plain_rate / 2)


def head_of_line_phases(phases: Phases, rate: float) -> None:
    """The 5 s request's delay without the slow lane (a threshold no request reaches: the 5 s run in
    the stream's lane, as before the slow lane), then with it (the template's threshold)."""
    for lane, parameters in (("without the slow lane", NO_SLOW_LANE), ("with the slow lane", {})):
        with (
            phases.table(f"streamdesk-latency-{len(parameters)}", parameters) as (settings, template),
            api_process(settings) as base_url,
            slow_lane_in_process(settings, template),
        ):
            submit = Submitter(base_url, settings.api_key, 16)
            head_of_line(settings, template, phases.ddb, submit, rate, lane)


def plain_round(
    phases: Phases, number: int, concurrency: int, seconds: float, backlog: int, counter: WriteCounter
) -> tuple[float, float]:
    """(plain drain rate, its ratio to ceiling / writes per request) of one round."""
    before = phases.ceiling(f"streamdesk-ceiling-{number}-before", concurrency, seconds)
    rate, writes = run_drain(phases, f"streamdesk-plain-{number}", [BODY] * backlog, counter)
    after = phases.ceiling(f"streamdesk-ceiling-{number}-after", concurrency, seconds)
    writes_per_request = writes + 1  # + the API's PutItem (accept)
    bound = (before + after) / 2 / writes_per_request
    print(f"  round {number}: ceiling {before:6.1f}/s before, {after:6.1f}/s after; writes per request "
          f"{writes_per_request:.2f} (accept + processor); plain {rate:6.1f}/s; "
          f"ceiling/writes {bound:6.1f}/s; ratio {rate / bound:.2f}x")  # fmt: skip
    return rate, rate / bound


def run_drain(phases: Phases, table: str, bodies: list[str], counter: WriteCounter) -> tuple[float, float]:
    with phases.table(table) as (settings, template), api_process(settings) as base_url:
        submit = Submitter(base_url, settings.api_key, 16)
        return drain(settings, template, submit, phases.ddb, bodies, counter)


NO_SLOW_LANE = {"SlowWorkThresholdMs": "1000000000"}


def head_of_line(
    settings: Settings, template: Template, ddb: Any, submit: Submitter, rate: float, lane: str
) -> None:
    count = max(20, int(rate * 8))
    with running_trigger(settings, template):
        base_ids = submit.put_at_rate([BODY] * count, rate)
        base = latencies(wait_finished(ddb, settings.table, base_ids, 120))
        slow = json.dumps({"order": 0, "simulate": {"delayMs": 5000}})
        ids = submit.put_at_rate([slow] + [BODY] * count, rate)
        after = latencies(wait_finished(ddb, settings.table, ids[1:], 120))
        wait_finished(ddb, settings.table, ids[:1], 60)
    p50, p99 = statistics.median(base), percentile(base, 99)
    print(f"latency at half the plain drain rate ({rate:.1f}/s, {count} requests), {lane}")
    print(f"  accepted -> finished: p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    delay = percentile(after, 99) - p99
    print(f"  after one 5 s request: p99 {percentile(after, 99):7.1f} ms   delay {delay:7.1f} ms "
          f"({delay / 5000:.3f}x of the 5 s)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=600, help="requests in each drain backlog")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="plain drains (the median is reported)")
    parser.add_argument(
        "--head-of-line-rate", type=float, default=None,
        help="only the 5 s request's delay, at this many requests a second, on a fresh engine",
    )  # fmt: skip
    args = parser.parse_args()
    concurrency = int(os.environ.get("PROCESSOR_CONCURRENCY", PROCESSOR_CONCURRENCY_DEFAULT))
    if args.head_of_line_rate is not None:
        with tempfile.TemporaryDirectory() as data_dir:
            ddb_local = DynamoDBLocal.start()
            try:
                phases = Phases(ddb_local, Path(data_dir), ddb_client(ddb_local.endpoint, 64))
                run_drain(phases, "streamdesk-warm-up-drain", [BODY] * 100, WriteCounter())
                head_of_line_phases(phases, args.head_of_line_rate)
            finally:
                ddb_local.stop()
        return 0
    with tempfile.TemporaryDirectory() as data_dir:
        # Ingest on an engine of its own, stopped before the drains: the thousands of items and stream
        # records it leaves behind must not slow the engine the drains and their ceilings run on.
        ingest_local = DynamoDBLocal.start()
        try:
            ingest_phases = Phases(ingest_local, Path(data_dir), ddb_client(ingest_local.endpoint, 64))
            with ingest_phases.table("streamdesk-ingest") as (settings, template):
                ingest(settings, template, ingest_phases.ddb, args.seconds)
        finally:
            ingest_local.stop()
        ddb_local = DynamoDBLocal.start()
        try:
            phases = Phases(ddb_local, Path(data_dir), ddb_client(ddb_local.endpoint, 64))
            pipeline(phases, concurrency, args.seconds, args.backlog, args.rounds)
        finally:
            ddb_local.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
