"""streamdesk_processor.batch: concurrency inside a batch, order per request, exact partial responses."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamdesk_processor.batch import run_batch


def rec(key: str, seq: int) -> dict[str, Any]:
    return {"eventID": f"e{seq}", "dynamodb": {"Keys": {"id": {"S": key}}, "SequenceNumber": str(seq)}}


def test_records_of_different_requests_run_concurrently() -> None:
    # Two requests that each wait for the other: only concurrent processing finishes them.
    barrier = threading.Barrier(2, timeout=5)
    with ThreadPoolExecutor(4) as pool:
        response = run_batch([rec("a", 1), rec("b", 2)], lambda _r: barrier.wait(), pool)
    assert response == {"batchItemFailures": []}


def test_one_requests_records_run_in_stream_order_and_after_a_failure_are_reported_not_run() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def handle(record: Mapping[str, Any]) -> None:
        with lock:
            seen.append(record["eventID"])
        if record["eventID"] == "e3":
            raise RuntimeError("transient")

    batch = [rec("a", 1), rec("b", 2), rec("a", 3), rec("b", 4), rec("a", 5)]
    with ThreadPoolExecutor(4) as pool:
        response = run_batch(batch, handle, pool)
    # e3 failed: e5 (same request, later) was not attempted, and both are reported, in stream order.
    assert response == {"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "5"}]}
    assert [e for e in seen if e in ("e1", "e3", "e5")] == ["e1", "e3"]
    assert [e for e in seen if e in ("e2", "e4")] == ["e2", "e4"]


def test_without_an_executor_the_batch_runs_one_record_at_a_time() -> None:
    seen: list[str] = []
    response = run_batch([rec("a", 1), rec("b", 2)], lambda r: seen.append(r["eventID"]), None)
    assert response == {"batchItemFailures": []} and seen == ["e1", "e2"]
