"""A cancellation racing the processor: the claim and the cancel are both conditional on PENDING, so one of
them wins and the other changes nothing. No request ends processed and cancelled, and no cancelled request
is processed, whatever the order: cancel first, claim first, a cancel between two attempts, and both at once
from many threads (DELETE through the API twin, the processor on the INSERT records)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from streamdesk_processor import item
from streamdesk_processor.errors import TransientError
from streamdesk_processor.item import Status
from streamdesk_processor.steps import STEPS, Step, StepContext

from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api
from tests.processor_events import (
    insert_record,
    lambda_context,
    make_processor,
    read_item,
    step_attempts,
    stream_event,
)

AUTH = {"x-api-key": "test-key-0123456789"}
NAMES = [step.name for step in STEPS]


@pytest.fixture()
def api(settings: Settings, template: Template) -> Iterator[httpx.Client]:
    with running_api(settings, template) as base_url, httpx.Client(base_url=base_url, timeout=20) as client:
        yield client


def submit(api: httpx.Client, body: dict[str, Any] | None = None) -> str:
    answer = api.put("/requests", json=body or {"order": 1}, headers=AUTH)
    assert answer.status_code == 202, answer.text
    request_id: str = answer.json()["id"]
    return request_id


def never_ran(stored: dict[str, Any]) -> bool:
    """No processing attempt ever claimed the request: nothing of the processor's is on it."""
    return (
        stored[item.ATTEMPTS] == 0
        and item.STARTED_AT not in stored
        and item.CLAIM not in stored
        and not stored.get(item.STEPS)
        and item.RESULT not in stored
    )


def test_cancelled_before_delivery_the_processor_never_runs_it(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    request_id = submit(api)
    record = insert_record(ddb, table_name, request_id)  # the INSERT the stream carries
    assert api.delete(f"/requests/{request_id}", headers=AUTH).status_code == 200

    ran: list[str] = []
    steps = tuple(Step(s.name, lambda ctx, s=s: ran.append(ctx.step) or s.run(ctx)) for s in STEPS)
    response = make_processor(ddb, table_name, steps=steps).handle(stream_event(record), lambda_context())

    assert response == {"batchItemFailures": []}  # done with, not retried
    assert ran == []
    stored = read_item(ddb, table_name, request_id)
    assert stored[item.STATUS] == Status.CANCELLED
    assert never_ran(stored)


def test_claimed_first_the_cancel_is_409_processing_and_the_request_finishes(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    request_id = submit(api)
    record = insert_record(ddb, table_name, request_id)
    inside, release = threading.Event(), threading.Event()

    def held(ctx: StepContext) -> dict[str, Any]:
        inside.set()
        assert release.wait(30)
        return {"held": "yes"}

    processor = make_processor(ddb, table_name, steps=(STEPS[0], Step("held", held), *STEPS[1:]))
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(processor.handle, stream_event(record), lambda_context())
        assert inside.wait(30)
        answer = api.delete(f"/requests/{request_id}", headers=AUTH)
        release.set()
        assert running.result(30) == {"batchItemFailures": []}

    assert answer.status_code == 409, answer.text
    assert answer.json()["status"] == Status.PROCESSING.value
    stored = read_item(ddb, table_name, request_id)
    assert stored[item.STATUS] == Status.SUCCEEDED
    assert item.TRAIL not in stored  # the refused cancel left no mark


def test_a_request_that_already_ran_steps_cannot_be_cancelled_and_finishes(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    """PENDING again after a transient failure is not "never started": its first step is done (a card
    charged, say), and a cancel would leave it half done. 409, and the redelivery finishes it."""
    request_id = submit(api)
    record = insert_record(ddb, table_name, request_id)
    calls: list[int] = []

    def flaky(ctx: StepContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise TransientError("the bank is down")
        return {}

    processor = make_processor(ddb, table_name, steps=(STEPS[0], Step("flaky", flaky), *STEPS[1:]))
    first = processor.handle(stream_event(record), lambda_context())
    assert len(first["batchItemFailures"]) == 1  # handed back: PENDING again, the trigger re-sends
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.PENDING

    refused = api.delete(f"/requests/{request_id}", headers=AUTH)
    assert refused.status_code == 409, refused.text
    assert refused.json()["status"] == Status.PENDING.value
    assert "never started" in refused.json()["message"]
    again = processor.handle(stream_event(record), lambda_context())  # the trigger's redelivery

    assert again == {"batchItemFailures": []}
    assert calls == [1, 2]
    stored = read_item(ddb, table_name, request_id)
    assert stored[item.STATUS] == Status.SUCCEEDED
    assert step_attempts(stored)[STEPS[0].name] == 1  # the completed step did not run again
    assert item.TRAIL not in stored  # the refused cancel left no mark


def test_cancels_racing_the_processor_never_end_both_processed_and_cancelled(
    api: httpx.Client, ddb: Any, table_name: str
) -> None:
    count = 40
    ids = [submit(api, {"n": n}) for n in range(count)]
    records = {rid: insert_record(ddb, table_name, rid) for rid in ids}
    ran: dict[str, list[str]] = {rid: [] for rid in ids}
    lock = threading.Lock()

    def tracked(step: Step) -> Step:
        def run(ctx: StepContext) -> Any:
            with lock:
                ran[ctx.request_id].append(ctx.step)
            return step.run(ctx)

        return Step(step.name, run)

    processor = make_processor(ddb, table_name, steps=tuple(tracked(s) for s in STEPS))
    order = random.Random(12).sample(ids, len(ids))
    answers: dict[str, httpx.Response] = {}
    start = threading.Barrier(2)

    def process_all() -> None:
        start.wait()
        for rid in ids:
            assert processor.handle(stream_event(records[rid]), lambda_context()) == {"batchItemFailures": []}

    def cancel_all() -> None:
        start.wait()
        for rid in order:
            answers[rid] = api.delete(f"/requests/{rid}", headers=AUTH)

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(process_all), pool.submit(cancel_all)]:
            done.result(120)

    outcomes = {Status.CANCELLED: 0, Status.SUCCEEDED: 0}
    for rid in ids:
        stored = read_item(ddb, table_name, rid)
        answer = answers[rid]
        if answer.status_code == 200:
            assert stored[item.STATUS] == Status.CANCELLED, rid
            assert never_ran(stored) and ran[rid] == [], rid
        else:
            assert answer.status_code == 409, answer.text
            assert answer.json()["status"] in (Status.PROCESSING.value, Status.SUCCEEDED.value)
            assert stored[item.STATUS] == Status.SUCCEEDED, rid
            assert ran[rid] == NAMES and item.TRAIL not in stored, rid
        outcomes[Status(stored[item.STATUS])] += 1
    assert sum(outcomes.values()) == count
