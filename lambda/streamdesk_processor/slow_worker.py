"""The slow-work worker: one Lambda event of SQS messages, each a request the stream processor handed off.

For each message: claim the hand-off (``RequestRecords.take_over``, conditional, with a lease as long as
the invocation may run), run the remaining steps with the stream processor's own step protocol
(``StreamProcessor.run_claimed``), record the outcome as it does. The answer is Lambda's partial batch
response for SQS (``batchItemFailures`` by messageId): a message listed stays in the queue and comes back
after its visibility timeout; every other one is deleted. docs/slow-lane.md has the cases.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamdesk_processor.item import Status
from streamdesk_processor.log import logger
from streamdesk_processor.processor import Clock, Outcome, SlowDelivery, StreamProcessor
from streamdesk_processor.records import Refused, RequestRecords
from streamdesk_processor.slow_lane import (
    DELIVERY_SEPARATOR,
    HandOff,
    SlowWorkQueue,
    delivery_token,
    retry_backoff_seconds,
)
from streamdesk_processor.stream import Work

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

# The lease without a Lambda context (tests calling the handler directly): a generous function timeout.
DEFAULT_LEASE_MS = 60_000


class SlowWorker:
    """Handles SQS events of hand-off messages (``streamdesk_processor.handler.slow_work_handler``)."""

    def __init__(
        self,
        processor: StreamProcessor,
        client: DynamoDBClient,
        *,
        clock: Clock = time.time,
        queue: SlowWorkQueue | None = None,
    ) -> None:
        self._processor = processor
        self._queue = queue  # for the backoff of a failed delivery (None: the queue's visibility timeout)
        self._records = RequestRecords(client, processor.config.table_name)
        self._clock = clock

    def handle(self, event: Mapping[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
        records = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(records, list):
            raise ValueError("Invalid event format: an SQS event has a list of Records")
        # A lease as long as this invocation may still run: once it has passed, the function is gone
        # (Lambda stops it at its timeout), so a redelivery may take over.
        lease_ms = context.get_remaining_time_in_millis() if context is not None else DEFAULT_LEASE_MS
        failures = []
        for record in records:
            try:
                outcome = self.process_message(record, lease_ms)
            except Exception:
                logger.exception("slow-work message failed; the queue delivers it again after its backoff")
                self._back_off(record)
                outcome = None
            if outcome in (None, Outcome.BUSY):
                failures.append({"itemIdentifier": str(record.get("messageId", ""))})
        return {"batchItemFailures": failures}

    def _back_off(self, record: Mapping[str, Any]) -> None:
        """Shorten a failed delivery's wait to its backoff (best effort: if the queue does not answer, the
        message comes back after the queue's visibility timeout instead)."""
        handle = record.get("receiptHandle")
        if self._queue is None or not isinstance(handle, str):
            return
        receive_count = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        seconds = retry_backoff_seconds(receive_count, self._processor.config.slow_work_visibility_seconds)
        try:
            self._queue.retry_after(handle, seconds)
        except Exception:  # BotoCoreError, ClientError: the queue's own timeout applies
            logger.warning("could not shorten the message's visibility timeout", exc_info=True)

    def process_message(self, record: Mapping[str, Any], lease_ms: int) -> Outcome:
        """One message: the outcome, or raises (the message is then delivered again)."""
        # A body that is not a hand-off raises: it comes back until the dead-letter queue keeps it, where a
        # person looks, rather than being deleted unseen.
        handoff = HandOff.from_body(str(record.get("body", "")))
        receive_count = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        token = delivery_token(handoff.token, receive_count, uuid.uuid4().hex[:8])
        log_keys: dict[str, Any] = {
            "requestId": handoff.request_id,
            "handoff": handoff.token,
            "messageId": record.get("messageId"),
            "receiveCount": receive_count,
        }
        now = int(self._clock() * 1000)
        claimed = self._records.take_over(
            handoff.request_id,
            handoff.token,
            token,
            new_attempt=receive_count > 1,
            now_ms=now,
            lease_until=now + lease_ms,
        )
        if isinstance(claimed, Refused):
            if _held_by_live_delivery(claimed, handoff.token, now):
                # SQS delivered the message twice at once (at least once): the other delivery runs it.
                # Left in the queue, not deleted: if that one dies, this copy takes over after the lease.
                logger.info("hand-off held by another delivery; left for later", extra=log_keys)
                return Outcome.BUSY
            logger.info("hand-off finished or replaced; message dropped", extra=log_keys)
            return Outcome.SKIPPED
        log_keys["attempt"] = claimed.attempts
        logger.info("hand-off claimed", extra={**log_keys, "completedSteps": sorted(claimed.steps)})
        work = Work(request_id=handoff.request_id, token=token, shard=handoff.shard)
        return self._processor.run_claimed(
            work, claimed, log_keys, SlowDelivery(handoff_token=handoff.token, receive_count=receive_count)
        )


def _held_by_live_delivery(refused: Refused, handoff_token: str, now_ms: int) -> bool:
    return (
        refused.status == Status.PROCESSING
        and (refused.claim or "").startswith(handoff_token + DELIVERY_SEPARATOR)
        and refused.lease_until is not None
        and refused.lease_until >= now_ms
    )
