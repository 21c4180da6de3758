"""Test helpers for the slow lane: an SQS twin on a free port, a processor that hands off to it, and the
worker fed with Lambda-shaped SQS events of the messages the twin hands out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from streamdesk_processor.config import ProcessorConfig
from streamdesk_processor.processor import StreamProcessor
from streamdesk_processor.slow_lane import SlowWorkQueue
from streamdesk_processor.slow_worker import SlowWorker
from streamdesk_processor.steps import STEPS, Step

from backend.local.sqs_event_source import lambda_event
from backend.local.sqs_server import SqsServer
from backend.local.sqs_store import QueueSettings, QueueStore
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY
from tests.processor_events import FakeClock

QUEUE = "slow-work"
DLQ = "slow-work-dlq"


@contextmanager
def running_sqs_twin(
    directory: Path, *, visibility_timeout: int = 1, max_receive_count: int = 3
) -> Iterator[SqsServer]:
    """The SQS twin on a free port with the slow-work queue and its dead-letter queue."""
    store = QueueStore(directory / "sqs" / "queues.sqlite3")
    store.create_queue(DLQ, QueueSettings())
    store.create_queue(
        QUEUE,
        QueueSettings(
            visibility_timeout=visibility_timeout, dead_letter_queue=DLQ, max_receive_count=max_receive_count
        ),
    )
    server = SqsServer(store, "127.0.0.1", 0, LOCAL_REGION).start()
    try:
        yield server
    finally:
        server.stop()
        store.close()


def sqs_client(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
    )


def queue_url(server: SqsServer, name: str = QUEUE) -> str:
    return server.twin.queue_url(name)


def slow_lane_processor(
    ddb: Any,
    table_name: str,
    sqs: Any,
    url: str,
    *,
    clock: FakeClock | None = None,
    threshold_ms: int = 100,
    max_receives: int = 3,
    steps: tuple[Step, ...] = STEPS,
    sleep: Any = None,
    visibility_seconds: int = 360,
) -> StreamProcessor:
    """A processor with the slow lane on (``simulate`` allowed, as in the local stack)."""
    config = ProcessorConfig(
        table_name=table_name,
        allow_simulate=True,
        slow_work_queue_url=url,
        slow_work_threshold_ms=threshold_ms,
        slow_work_max_receives=max_receives,
        slow_work_visibility_seconds=visibility_seconds,
    )
    extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return StreamProcessor(
        config, ddb, steps=steps, clock=clock or FakeClock(), slow_work=SlowWorkQueue(sqs, url), **extra
    )


def worker(
    processor: StreamProcessor, ddb: Any, clock: FakeClock | None = None, queue: SlowWorkQueue | None = None
) -> SlowWorker:
    """The slow-work worker (``queue``: the one it shortens a failed delivery's wait on; None: the message
    waits the queue's whole visibility timeout)."""
    return SlowWorker(processor, ddb, clock=clock or FakeClock(), queue=queue)


def receive(sqs: Any, url: str, *, wait: int = 0, count: int = 10) -> list[dict[str, Any]]:
    answer = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=count, WaitTimeSeconds=wait, MessageSystemAttributeNames=["All"]
    )
    messages: list[dict[str, Any]] = answer.get("Messages") or []
    return messages


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return lambda_event(messages, "arn:aws:sqs:us-east-1:000000000000:slow-work", LOCAL_REGION)


def deliver(sqs: Any, url: str, slow_worker: SlowWorker, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Invoke the worker as the event source does, deleting what it did not report as failed."""
    response = slow_worker.handle(sqs_event(messages))
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return response


def depth(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
