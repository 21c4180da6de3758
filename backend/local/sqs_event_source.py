"""The slow lane's event source twin: a local stand-in for Lambda's SQS event source mapping.

As the mapping in ``infra/template.yaml`` would: pollers (the mapping's ``ScalingConfig.
MaximumConcurrency``, capped for one process) long-poll the queue for up to ``BatchSize`` messages with
every system attribute, invoke the function with Lambda's SQS event shape, and delete what succeeded.
With ``ReportBatchItemFailures`` the messages listed in ``batchItemFailures`` stay (an unknown identifier
fails the whole batch, as on AWS); a function error leaves every message of the batch. What stays comes
back after the queue's visibility timeout, and the queue's redrive policy moves a message to the
dead-letter queue by its receive count: retries and give-ups are the queue's, as on AWS.

A kill -9 loses nothing: a message is deleted only after its invocation succeeded, and the queue (the SQS
twin, SQLite) is durable. The state file (``Settings.slow_work_state_path``) feeds the supervisor and the
health page.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import boto3
from botocore.config import Config

from backend.clock import now_ms
from backend.local.checkpoint import atomic_write_json
from backend.local.lambda_runtime import LambdaRuntime
from backend.local.local_template import local_template, queue_arn, queue_url
from backend.local.sqs_queues import SqsEsmConfig, load_sqs_esm_config
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Settings
from backend.slow_work_state import SlowWorkState
from backend.template import Template

log = logging.getLogger("streamdesk.slow-work")

WAIT_SECONDS = 1  # long-poll length: short, so that a stop is seen within a second
STATE_EVERY_SECONDS = 1.0


def sqs_client(settings: Settings, connections: int = 10, *, attempts: int = 3, timeout: float = 30) -> Any:
    """A client of the local SQS twin (``attempts`` 1 and a short ``timeout`` for a page that only looks)."""
    return boto3.client(
        "sqs",
        endpoint_url=settings.sqs_url,
        region_name=settings.region,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
        config=Config(
            retries={"mode": "standard", "max_attempts": attempts},
            max_pool_connections=connections,
            connect_timeout=min(timeout, 5),
            read_timeout=timeout,
        ),
    )


def lambda_event(messages: list[dict[str, Any]], source_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SQS event for received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


class SqsEventSource:
    """Polls the slow-work queue and invokes the function; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        template: Template,
        esm: SqsEsmConfig | None = None,
        invoke: Any = None,
    ) -> None:
        self.settings = settings
        self.esm = esm or load_sqs_esm_config(local_template(settings, template))
        self.queue_url = queue_url(settings, self.esm.queue_id)
        self._source_arn = queue_arn(settings, self.esm.queue_id)
        self._runtime: LambdaRuntime | None = None
        if invoke is None:
            self._runtime = LambdaRuntime(settings, self.esm.function)
            invoke = self._runtime.invoke
        self._invoke = invoke
        self._sqs = sqs_client(settings, self.esm.local_pollers + 2)
        self._lock = threading.Lock()
        started = now_ms()
        self.state = SlowWorkState(
            pid=os.getpid(),
            started_at=started,
            heartbeat_at=started,
            queue_url=self.queue_url,
            pollers=self.esm.local_pollers,
            batch_size=self.esm.batch_size,
        )

    # ------------------------------------------------------------------------------------- running
    def run(self, stop: threading.Event) -> None:
        log.info(
            "slow-work event source on %s: batch size %d, %d pollers, partial batch responses %s",
            self.queue_url,
            self.esm.batch_size,
            self.esm.local_pollers,
            self.esm.report_batch_item_failures,
        )
        self._write_state()  # the supervisor waits for this process's first state
        pollers = [
            threading.Thread(target=self._poll_loop, args=(stop,), name=f"sqs-poller-{n}", daemon=True)
            for n in range(self.esm.local_pollers if self.esm.enabled else 0)
        ]
        for poller in pollers:
            poller.start()
        try:
            while not stop.wait(STATE_EVERY_SECONDS):
                self._write_state()
        finally:
            for poller in pollers:
                poller.join(timeout=WAIT_SECONDS + 30)
            self.state.stopped = True
            self._write_state()
            if self._runtime is not None:
                self._runtime.close()

    def _poll_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once(WAIT_SECONDS)
            except Exception as error:  # the twin restarting, say: try again after a pause
                with self._lock:
                    self.state.last_error = f"{type(error).__name__}: {error}"
                log.warning("slow-work poll failed: %s", error)
                stop.wait(1.0)

    def poll_once(self, wait_seconds: float = 0) -> int:
        """Receive one batch and deliver it; the number of messages received."""
        answer = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(10, self.esm.batch_size),
            WaitTimeSeconds=int(wait_seconds),
            MessageSystemAttributeNames=["All"],
        )
        messages = answer.get("Messages") or []
        if messages:
            self._deliver(messages)
        return len(messages)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        event = lambda_event(messages, self._source_arn, self.settings.region)
        with self._lock:
            self.state.in_flight += 1
        failed: set[str] = set()
        function_error: str | None = None
        try:
            response = self._invoke(event)
            failed = self._failed_ids(response, messages)
        except Exception as error:  # a function error: every message stays, as on AWS
            function_error = f"{type(error).__name__}: {error}"
            failed = {message["MessageId"] for message in messages}
            log.warning(
                "slow-work invocation failed; its %d messages come back later: %s", len(messages), error
            )
        finally:
            with self._lock:
                self.state.in_flight -= 1
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            answer = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)],
            )
            for entry in answer.get("Failed", []):
                # The message comes back after its visibility timeout; the worker's claim then finds its
                # request finished and drops it, so this costs a delivery, never a repeated step.
                log.warning("a done message was not deleted (%s): it will be delivered again", entry)
        with self._lock:
            state = self.state
            state.batches += 1
            state.messages += len(messages)
            state.deleted += len(done)
            state.left_for_redelivery += len(failed)
            state.last_batch_at = now_ms()
            if function_error is not None:
                state.function_errors += 1
                state.last_error = function_error

    def _failed_ids(self, response: Any, messages: list[dict[str, Any]]) -> set[str]:
        """The messages to leave in the queue, read as Lambda reads the function's answer."""
        if not self.esm.report_batch_item_failures:
            return set()
        if not isinstance(response, dict) or response.get("batchItemFailures") is None:
            return set()
        ids = {message["MessageId"] for message in messages}
        failed = set()
        for failure in response["batchItemFailures"]:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not identifier or identifier not in ids:
                # Lambda: an empty or unknown identifier fails the whole batch.
                return ids
            failed.add(str(identifier))
        return failed

    def _write_state(self) -> None:
        with self._lock:
            self.state.heartbeat_at = now_ms()
            document = self.state.to_json()
        atomic_write_json(self.settings.slow_work_state_path, document, durable=False)


def run_slow_work(settings: Settings, template: Template, stop: threading.Event) -> None:
    """Entry point for the supervisor's ``slow-work`` component."""
    SqsEventSource(settings, template).run(stop)


def wait_until_answering(settings: Settings, timeout: float = 30.0) -> None:
    """Until the SQS twin answers (the event source starts after it)."""
    deadline = time.monotonic() + timeout
    client = sqs_client(settings)
    while True:
        try:
            client.list_queues()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
