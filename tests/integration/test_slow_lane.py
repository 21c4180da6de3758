"""The slow lane end to end in one process: the stream processor hands a long request off (one conditional
write, then a message to the SQS twin), the worker claims it and finishes it with the same step protocol.
Duplicate deliveries, a crash between the hand-off write and the send, a worker dying mid-step, transient
and permanent failures, a redrive and a cancel, each on DynamoDB Local and the SQS twin (never mocked)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import EndpointConnectionError
from streamdesk_processor import item
from streamdesk_processor.item import Status
from streamdesk_processor.processor import Outcome
from streamdesk_processor.records import Refused, RequestRecords
from streamdesk_processor.slow_lane import (
    RETRY_BACKOFF_MAX_S,
    HandOff,
    SlowWorkQueue,
    handoff_token,
    retry_backoff_seconds,
)
from streamdesk_processor.steps import STEPS, Step, StepContext

from backend.local.sqs_server import SqsServer
from backend.roles import Actor, Role
from backend.settings import Settings
from backend.store.actions import Outcome as ActionOutcome
from backend.store.actions import RequestActions
from backend.template import Template
from tests.api_fixtures import running_api
from tests.processor_events import (
    FakeClock,
    insert_record,
    lambda_context,
    put_pending_item,
    read_item,
    redrive,
    step_attempts,
    stream_event,
)
from tests.slow_lane_fixtures import (
    DLQ,
    deliver,
    depth,
    queue_url,
    receive,
    running_sqs_twin,
    slow_lane_processor,
    sqs_client,
    worker,
)

NAMES = [step.name for step in STEPS]
LONG = {"simulate": {"delayMs": 120}}  # over the tests' threshold of 100 ms


@pytest.fixture()
def twin(tmp_path: Path) -> Iterator[SqsServer]:
    with running_sqs_twin(tmp_path) as server:
        yield server


@pytest.fixture()
def sqs(twin: SqsServer) -> Any:
    return sqs_client(twin.url)


@pytest.fixture()
def url(twin: SqsServer) -> str:
    return queue_url(twin)


def no_sleep(_seconds: float) -> None:
    """Simulated delays cost no time here (the decision reads the request, not the clock)."""


def test_a_short_request_never_leaves_the_stream(ddb: Any, table_name: str, sqs: Any, url: str) -> None:
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, {"simulate": {"delayMs": 50}})
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.SUCCEEDED
    assert depth(sqs, url) == (0, 0)


def test_a_long_request_is_handed_off_and_finished_by_the_worker(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, LONG)
    record = insert_record(ddb, table_name, request_id)

    assert processor.handle(stream_event(record), lambda_context()) == {"batchItemFailures": []}
    waiting = read_item(ddb, table_name, request_id)
    assert waiting[item.STATUS] == Status.PROCESSING  # GET, the dashboard and cancel see a started request
    assert waiting[item.CLAIM] == handoff_token(record["eventID"])
    assert waiting[item.HANDOFF][item.HANDOFF_STEP] == NAMES[0]
    assert waiting[item.STEPS] == {}
    messages = receive(sqs, url)
    assert [HandOff.from_body(m["Body"]).request_id for m in messages] == [request_id]

    assert deliver(sqs, url, worker(processor, ddb), messages) == {"batchItemFailures": []}
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.ATTEMPTS] == 1  # the hand-off continues the stream's attempt
    assert step_attempts(done) == dict.fromkeys(NAMES, 1)
    assert item.HANDOFF not in done and item.LEASE_UNTIL not in done and item.CLAIM not in done
    assert depth(sqs, url) == (0, 0)


def test_steps_before_a_long_step_run_on_the_stream(ddb: Any, table_name: str, sqs: Any, url: str) -> None:
    steps = (STEPS[0], Step("export", lambda ctx: {"exported": "yes"}, long=True), *STEPS[1:])
    processor = slow_lane_processor(ddb, table_name, sqs, url, steps=steps)
    request_id = put_pending_item(ddb, table_name, {"n": 1})
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    waiting = read_item(ddb, table_name, request_id)
    assert step_attempts(waiting) == {NAMES[0]: 1}
    assert waiting[item.HANDOFF][item.HANDOFF_STEP] == "export"
    deliver(sqs, url, worker(processor, ddb), receive(sqs, url))
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.RESULT]["exported"] == "yes"


def test_a_duplicate_delivery_runs_nothing_twice(ddb: Any, table_name: str, sqs: Any, url: str) -> None:
    runs: list[str] = []

    def counted(name: str) -> Step:
        return Step(name, lambda ctx: runs.append(name) or {name: "done"})

    steps = tuple(counted(name) for name in NAMES)
    processor = slow_lane_processor(ddb, table_name, sqs, url, steps=steps, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, LONG)
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    (message,) = receive(sqs, url)
    duplicate = {**message, "ReceiptHandle": message["ReceiptHandle"]}  # SQS delivering one message twice

    the_worker = worker(processor, ddb)
    assert the_worker.handle({"Records": []}) == {"batchItemFailures": []}
    deliver(sqs, url, the_worker, [message])
    assert deliver(sqs, url, the_worker, [duplicate]) == {"batchItemFailures": []}  # skipped, dropped
    assert runs == NAMES
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.SUCCEEDED


def test_a_duplicate_delivery_while_one_runs_is_left_for_later(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    """Two copies at once: one claims (with a lease), the other is refused and stays in the queue."""
    inside, release = threading.Event(), threading.Event()

    def slow(ctx: StepContext) -> dict[str, Any]:
        inside.set()
        assert release.wait(10)
        return {}

    steps = (Step("slow", slow, long=True), *STEPS[1:])
    processor = slow_lane_processor(ddb, table_name, sqs, url, steps=steps)
    request_id = put_pending_item(ddb, table_name, {"n": 1})
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    (message,) = receive(sqs, url)
    first = threading.Thread(
        target=lambda: worker(processor, ddb).handle({"Records": [_sqs_record(message)]})
    )
    first.start()
    assert inside.wait(10)
    second = worker(processor, ddb).handle({"Records": [_sqs_record(message)]})
    assert second == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    release.set()
    first.join(10)
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.SUCCEEDED


def _sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    from tests.slow_lane_fixtures import sqs_event

    record: dict[str, Any] = sqs_event([message])["Records"][0]
    return record


class SendCut:
    """SendMessage fails as if the SQS endpoint were unreachable (fault injection at botocore's hook)."""

    def __init__(self, sqs: Any) -> None:
        self.active = True
        sqs.meta.events.register("before-send.sqs.SendMessage", self)

    def __call__(self, request: Any, **_: Any) -> None:
        if self.active:
            raise EndpointConnectionError(endpoint_url=request.url)


class Crash(BaseException):
    """The invocation dying (kill -9, a timeout): nothing in the function catches it."""


class CrashOnSend:
    """The function dies right after the hand-off write, before its message is sent."""

    def __init__(self, sqs: Any) -> None:
        self.active = True
        sqs.meta.events.register("before-send.sqs.SendMessage", self)

    def __call__(self, **_: Any) -> None:
        if self.active:
            raise Crash()


def test_a_crash_between_the_hand_off_and_the_send_heals_itself(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    crash = CrashOnSend(sqs)
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, LONG)
    record = insert_record(ddb, table_name, request_id)

    with pytest.raises(Crash):
        processor.handle(stream_event(record), lambda_context())
    assert read_item(ddb, table_name, request_id)[item.CLAIM] == handoff_token(record["eventID"])
    assert depth(sqs, url) == (0, 0)  # written, never sent

    # The trigger delivers the record again: its claim is refused on its own hand-off, it sends.
    crash.active = False
    assert processor.handle(stream_event(record), lambda_context()) == {"batchItemFailures": []}
    assert read_item(ddb, table_name, request_id)[item.ATTEMPTS] == 1  # no new claim, no new attempt
    deliver(sqs, url, worker(processor, ddb), receive(sqs, url))
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert step_attempts(done) == dict.fromkeys(NAMES, 1)


def test_with_the_queue_unreachable_the_request_is_taken_back_and_runs_in_the_stream(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    """An SQS outage costs latency, never a request: no record fails, nothing waits for a person."""
    SendCut(sqs)
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, LONG)
    record = insert_record(ddb, table_name, request_id)
    assert processor.handle(stream_event(record), lambda_context()) == {"batchItemFailures": []}
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert step_attempts(done) == dict.fromkeys(NAMES, 1)
    assert item.HANDOFF not in done and item.CLAIM not in done


def test_a_redelivered_hand_off_the_queue_cannot_take_runs_in_the_stream(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    crash = CrashOnSend(sqs)
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, LONG)
    record = insert_record(ddb, table_name, request_id)
    with pytest.raises(Crash):
        processor.handle(stream_event(record), lambda_context())
    crash.active = False
    SendCut(sqs)  # and then the queue is down when the record comes back
    assert processor.handle(stream_event(record), lambda_context()) == {"batchItemFailures": []}
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.SUCCEEDED


def test_a_worker_dying_mid_step_is_taken_over_after_the_visibility_timeout(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    """The first delivery completes a step, then hangs (as good as dead); its message comes back after
    the visibility timeout, and once its lease has passed the redelivery resumes after the last completed
    step. The dead one's late writes are refused."""
    hang, release = threading.Event(), threading.Event()
    runs: list[tuple[str, int]] = []

    def step(name: str) -> Step:
        def run(ctx: StepContext) -> dict[str, Any]:
            runs.append((name, ctx.attempt))
            if name == NAMES[2] and not hang.is_set():
                hang.set()
                release.wait(10)
            return {name: "done"}

        return Step(name, run, long=name == NAMES[0])

    clock = FakeClock()
    processor = slow_lane_processor(
        ddb, table_name, sqs, url, steps=tuple(step(n) for n in NAMES), clock=clock
    )
    request_id = put_pending_item(ddb, table_name, {"n": 1})
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    (message,) = receive(sqs, url)
    dying = threading.Thread(
        target=lambda: worker(processor, ddb, clock).handle(
            {"Records": [_sqs_record(message)]}, lambda_context()
        )
    )
    dying.start()
    assert hang.wait(10)
    assert step_attempts(read_item(ddb, table_name, request_id)) == {NAMES[0]: 1, NAMES[1]: 1}

    (again,) = receive(sqs, url, wait=5)  # back after the 1 s visibility timeout
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    clock.advance(31)  # the first delivery's lease (its remaining time, 30 s) has passed
    assert deliver(sqs, url, worker(processor, ddb, clock), [again]) == {"batchItemFailures": []}
    release.set()
    dying.join(10)

    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.ATTEMPTS] == 2
    assert step_attempts(done) == {NAMES[0]: 1, NAMES[1]: 1, NAMES[2]: 2, NAMES[3]: 2}
    # Completed steps never ran again; only the step the dead delivery was in ran twice.
    assert [name for name, _ in runs].count(NAMES[1]) == 1
    assert [name for name, _ in runs].count(NAMES[2]) == 2


def test_a_transient_failure_in_the_slow_lane_is_retried_by_redelivery(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    body = {"simulate": {"delayMs": 120, "fail": "upstream timeout", "transient": True, "failAtStep": 3,
                         "failTimes": 1}}  # fmt: skip
    request_id = put_pending_item(ddb, table_name, body)
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    the_worker = worker(processor, ddb)
    (message,) = receive(sqs, url)
    assert deliver(sqs, url, the_worker, [message]) == {
        "batchItemFailures": [{"itemIdentifier": message["MessageId"]}]
    }
    waiting = read_item(ddb, table_name, request_id)
    assert waiting[item.STATUS] == Status.PROCESSING
    assert waiting[item.LAST_ERROR][item.ERROR_MESSAGE] == "upstream timeout"
    assert waiting[item.CLAIM] == waiting[item.HANDOFF][item.HANDOFF_TOKEN]

    (again,) = receive(sqs, url, wait=5)  # the visibility timeout is the backoff
    assert deliver(sqs, url, the_worker, [again]) == {"batchItemFailures": []}
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert done[item.ATTEMPTS] == 2
    assert step_attempts(done) == {NAMES[0]: 1, NAMES[1]: 1, NAMES[2]: 2, NAMES[3]: 2}


def test_a_transient_failure_comes_back_after_its_backoff_not_the_whole_visibility_timeout(
    ddb: Any, table_name: str, tmp_path: Path
) -> None:
    """The queue hides a delivered message for 30 s; after a transient failure the worker shortens that to
    its backoff (here capped by a 1 s visibility setting), so the retry is back well before a request
    waiting that long would look stuck (docs/slow-lane.md)."""
    with running_sqs_twin(tmp_path / "long-visibility", visibility_timeout=30) as twin:
        sqs, url = sqs_client(twin.url), queue_url(twin)
        processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep, visibility_seconds=1)
        body = {"simulate": {"delayMs": 120, "fail": "upstream timeout", "transient": True, "failAtStep": 3,
                             "failTimes": 1}}  # fmt: skip
        request_id = put_pending_item(ddb, table_name, body)
        processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
        the_worker = worker(processor, ddb, queue=SlowWorkQueue(sqs, url))
        (message,) = receive(sqs, url)
        assert deliver(sqs, url, the_worker, [message])["batchItemFailures"]
        assert depth(sqs, url) == (0, 1)  # hidden: the backoff, not gone
        (again,) = receive(sqs, url, wait=5)  # back after about 1 s, not 30
        assert deliver(sqs, url, the_worker, [again]) == {"batchItemFailures": []}
        assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.SUCCEEDED


def test_the_retry_backoff_doubles_and_stays_under_the_stuck_threshold() -> None:
    assert [retry_backoff_seconds(n, 360) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 80, 80]
    assert retry_backoff_seconds(3, 6) == 6  # never longer than the queue's own visibility timeout
    # The longest quiet time of a request in the slow lane: a backoff, then a whole function timeout.
    assert RETRY_BACKOFF_MAX_S + 60 < 300


def test_a_transient_failure_at_the_last_delivery_ends_failed(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep, max_receives=2)
    body = {"simulate": {"delayMs": 120, "fail": "still down", "transient": True, "failAtStep": 2}}
    request_id = put_pending_item(ddb, table_name, body)
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    the_worker = worker(processor, ddb)
    deliver(sqs, url, the_worker, receive(sqs, url))
    assert deliver(sqs, url, the_worker, receive(sqs, url, wait=5)) == {"batchItemFailures": []}
    failed = read_item(ddb, table_name, request_id)
    assert failed[item.STATUS] == Status.FAILED
    assert failed[item.ERROR][item.ERROR_TRANSIENT] is True
    assert failed[item.ERROR][item.ERROR_STEP] == NAMES[1]
    assert depth(sqs, url) == (0, 0)  # kept on the item for people, not in the dead-letter queue


def test_a_permanent_failure_ends_failed_and_a_redrive_resumes_after_the_last_step(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    body = {"simulate": {"delayMs": 120, "fail": "card declined", "failAtStep": 3, "failTimes": 1}}
    request_id = put_pending_item(ddb, table_name, body)
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    deliver(sqs, url, worker(processor, ddb), receive(sqs, url))
    failed = read_item(ddb, table_name, request_id)
    assert failed[item.STATUS] == Status.FAILED
    assert failed[item.ERROR][item.ERROR_STEP] == NAMES[2]
    assert item.HANDOFF not in failed

    # The redrive goes through the stream as today; the request is long, so it is handed off again.
    record = redrive(ddb, table_name, request_id)
    assert processor.handle(stream_event(record), lambda_context()) == {"batchItemFailures": []}
    assert read_item(ddb, table_name, request_id)[item.HANDOFF][item.HANDOFF_STEP] == NAMES[2]
    deliver(sqs, url, worker(processor, ddb), receive(sqs, url))
    done = read_item(ddb, table_name, request_id)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert step_attempts(done) == {NAMES[0]: 1, NAMES[1]: 1, NAMES[2]: 2, NAMES[3]: 2}


def test_a_message_of_a_replaced_hand_off_is_dropped(ddb: Any, table_name: str, sqs: Any, url: str) -> None:
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, LONG)
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    stale = HandOff(request_id, handoff_token("another-record"), "0", NAMES[0])
    sqs.send_message(QueueUrl=url, MessageBody=stale.body())
    messages = sorted(receive(sqs, url), key=lambda m: m["Body"] != stale.body())
    outcomes = [worker(processor, ddb).process_message(_sqs_record(m), 30_000) for m in messages]
    assert outcomes == [Outcome.SKIPPED, Outcome.SUCCEEDED]


def test_cancel_of_a_handed_off_request_is_refused(ddb: Any, table_name: str, sqs: Any, url: str) -> None:
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, LONG)
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    result = RequestActions(ddb, table_name).cancel(request_id, Actor("tests", Role.OPERATOR))
    assert result.outcome is ActionOutcome.NOT_PENDING
    assert read_item(ddb, table_name, request_id)[item.STATUS] == Status.PROCESSING


def test_a_message_that_keeps_failing_moves_to_the_dead_letter_queue(
    twin: SqsServer, sqs: Any, url: str
) -> None:
    sqs.send_message(QueueUrl=url, MessageBody="not a hand-off")
    for _ in range(3):  # maxReceiveCount 3
        assert receive(sqs, url, wait=5)
    deadline = time.monotonic() + 5
    while not receive(sqs, queue_url(twin, DLQ)):
        assert time.monotonic() < deadline
        receive(sqs, url, wait=1)  # the receive after the last one moves it


def test_a_long_request_costs_two_writes_more_than_a_plain_one(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    writes: list[str] = []
    sends: list[str] = []
    ddb.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: writes.append("update"))
    sqs.meta.events.register("before-call.sqs.SendMessage", lambda **_: sends.append("send"))
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    plain = put_pending_item(ddb, table_name, {"n": 1})
    processor.handle(stream_event(insert_record(ddb, table_name, plain)), lambda_context())
    assert (len(writes), len(sends)) == (5, 0)  # claim, 3 steps, last step + finish (+ the accept: 6)
    writes.clear()
    long = put_pending_item(ddb, table_name, LONG)
    processor.handle(stream_event(insert_record(ddb, table_name, long)), lambda_context())
    deliver(sqs, url, worker(processor, ddb), receive(sqs, url))
    assert read_item(ddb, table_name, long)[item.STATUS] == Status.SUCCEEDED
    # claim, hand-off, the worker's claim, 3 steps, last step + finish (+ the accept: 8); one message.
    assert (len(writes), len(sends)) == (7, 1)


def test_delete_of_a_handed_off_request_is_409_and_changes_nothing(
    ddb: Any, settings: Settings, template: Template, sqs: Any, url: str
) -> None:
    """Through the API twin, as a client cancels: a handed-off request has started, so it goes on."""
    processor = slow_lane_processor(ddb, settings.table, sqs, url, sleep=no_sleep)
    auth = {"x-api-key": settings.api_key}
    with running_api(settings, template) as base_url, httpx.Client(base_url=base_url, timeout=20) as api:
        accepted = api.put("/requests", json=LONG, headers=auth)
        assert accepted.status_code == 202, accepted.text
        request_id = accepted.json()["id"]
        processor.handle(stream_event(insert_record(ddb, settings.table, request_id)), lambda_context())
        before = read_item(ddb, settings.table, request_id)
        answer = api.delete(f"/requests/{request_id}", headers=auth)
        assert answer.status_code == 409, answer.text
        assert answer.json()["status"] == Status.PROCESSING.value
        assert read_item(ddb, settings.table, request_id) == before
        deliver(sqs, url, worker(processor, ddb), receive(sqs, url))
        assert api.get(f"/requests/{request_id}", headers=auth).json()["status"] == Status.SUCCEEDED.value


def test_reconcile_leaves_a_request_a_worker_holds_and_hands_back_one_whose_lease_passed(
    ddb: Any, table_name: str, sqs: Any, url: str
) -> None:
    """A worker in a long step writes nothing, so the request can look stuck; reconcile must not take it
    from under a live lease (the step would run twice), and once the lease has passed it hands it back
    without the hand-off's attributes, so the redrive starts clean."""
    processor = slow_lane_processor(ddb, table_name, sqs, url, sleep=no_sleep)
    request_id = put_pending_item(ddb, table_name, LONG)
    processor.handle(stream_event(insert_record(ddb, table_name, request_id)), lambda_context())
    handed = read_item(ddb, table_name, request_id)
    now = int(time.time() * 1000)
    claimed = RequestRecords(ddb, table_name).take_over(
        request_id,
        handed[item.CLAIM],
        handed[item.CLAIM] + "/1.test",
        new_attempt=False,
        now_ms=now,
        lease_until=now + 60_000,
    )
    assert not isinstance(claimed, Refused)
    held = read_item(ddb, table_name, request_id)
    actions, actor = RequestActions(ddb, table_name), Actor("tests", Role.OPERATOR)

    refused = actions.hand_back_stuck(
        request_id, Status.PROCESSING, int(held[item.UPDATED_AT]), "stuck", actor
    )
    assert refused.outcome is ActionOutcome.NOT_STUCK
    assert read_item(ddb, table_name, request_id)[item.CLAIM] == held[item.CLAIM]  # nothing changed

    ddb.update_item(  # the worker died: its lease passes
        TableName=table_name,
        Key={item.ID: {"S": request_id}},
        UpdateExpression="SET #lease = :past",
        ExpressionAttributeNames={"#lease": item.LEASE_UNTIL},
        ExpressionAttributeValues={":past": {"N": str(now - 1)}},
    )
    handed_back = actions.hand_back_stuck(
        request_id, Status.PROCESSING, int(held[item.UPDATED_AT]), "stuck", actor
    )
    assert handed_back.outcome is ActionOutcome.REDRIVEN
    after = read_item(ddb, table_name, request_id)
    assert after[item.STATUS] == Status.PENDING
    assert item.HANDOFF not in after and item.LEASE_UNTIL not in after and item.CLAIM not in after
