"""The stream processor: claims each new or redriven request, runs the business-logic steps, records the
outcome on the item (see docs/internal-contracts.md, "Processor claim protocol")."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from streamdesk_processor import item
from streamdesk_processor.batch import run_batch
from streamdesk_processor.bounds import bounded_summary, head, tail
from streamdesk_processor.config import ProcessorConfig
from streamdesk_processor.errors import BusinessError, InvalidRequestError, StreamdeskError, TransientError
from streamdesk_processor.item import Status
from streamdesk_processor.log import logger
from streamdesk_processor.records import Claimed, ClaimLost, ErrorInfo, Refused, RequestRecords, StepRecord
from streamdesk_processor.simulate import Simulation
from streamdesk_processor.slow_lane import HandOff, SlowWorkQueue, handoff_token, is_long
from streamdesk_processor.steps import STEPS, Step, StepContext
from streamdesk_processor.stream import Ignored, Work, classify

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

# Recorded as the error's step when the request itself cannot be read (before any step runs).
REQUEST_STEP = "request"

Clock = Callable[[], float]  # epoch seconds, like time.time
Sleep = Callable[[float], None]


class Outcome(StrEnum):
    """What became of one stream record (the record handler's return value, also logged)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    IGNORED = "IGNORED"  # not work for the processor (TTL deletion, its own update, ...)
    SKIPPED = "SKIPPED"  # the request is finished or claimed by another record
    CLAIM_LOST = "CLAIM_LOST"  # taken over mid-way by another invocation of the same record
    HANDED_OFF = "HANDED_OFF"  # left to the slow lane before a long step (docs/slow-lane.md)
    BUSY = "BUSY"  # slow lane: another delivery of the same hand-off holds a live lease


@dataclass(frozen=True)
class SlowDelivery:
    """The slow lane's side of a run: the hand-off it continues and the queue's delivery count, which
    decide a transient failure (released for redelivery, or FAILED at the last delivery)."""

    handoff_token: str
    receive_count: int


class StreamProcessor:
    """Processes one Lambda event of DynamoDB stream records with Powertools' partial-batch contract.

    A permanent business error ends the request FAILED and counts as success for the batch. A transient
    error (or an unexpected exception in a step) with retries left sends the request back to PENDING and
    raises, so the record is reported in ``batchItemFailures`` and re-sent. Failures to reach DynamoDB
    propagate as record failures as well; the claim (this record's eventID) lets the redelivery take over.
    """

    def __init__(
        self,
        config: ProcessorConfig,
        client: DynamoDBClient,
        *,
        steps: Sequence[Step] = STEPS,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        slow_work: SlowWorkQueue | None = None,
    ) -> None:
        if not steps:
            raise ValueError("the business logic needs at least one step")
        names = [step.name for step in steps]
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"step names must be unique and non-empty: {names}")
        self.config = config
        self._records = RequestRecords(client, config.table_name)
        self._steps = tuple(steps)
        self._clock = clock
        self._sleep = sleep
        # Long steps are handed off only when the deployment has the slow lane (a queue to send to).
        self._slow_work = slow_work if config.hands_off else None
        # Requests wait mostly on their DynamoDB writes: running different requests of a batch at once
        # keeps one slow request from holding up the rest (config.concurrency bounds it).
        self._pool = (
            ThreadPoolExecutor(config.concurrency, thread_name_prefix="record")
            if config.concurrency > 1
            else None
        )

    def handle(
        self, event: dict[str, Any], context: LambdaContext | None = None
    ) -> PartialItemFailureResponse:
        """The Lambda response: ``{"batchItemFailures": [{"itemIdentifier": <SequenceNumber>}, ...]}``.

        Every record not durably done is listed (streamdesk_processor.batch), even when all of them
        failed: raising instead would be a function error, which Lambda answers by bisecting the batch at
        once (no backoff, and bisected invocations are not counted as retries), so a short outage would
        burn every request's attempts in milliseconds. Reported, the records are retried with the
        mapping's backoff and retry limit.
        """
        records = event.get("Records") if isinstance(event, dict) else None
        if not isinstance(records, list):
            raise ValueError("Invalid event format: a DynamoDB stream event has a list of Records")
        response = run_batch(records, lambda raw: self.process_record(DynamoDBRecord(dict(raw))), self._pool)
        return response  # type: ignore[return-value]

    # ---------------------------------------------------------------------------------- one record
    def process_record(self, record: DynamoDBRecord) -> Outcome:
        decision = classify(record.raw_event)
        if isinstance(decision, Ignored):
            logger.debug("record ignored", extra={"eventID": record.event_id, "reason": decision.reason})
            return Outcome.IGNORED
        log_keys: dict[str, Any] = {"requestId": decision.request_id, "eventID": decision.token}
        claimed = self._records.claim(decision.request_id, decision.token, decision.shard, self._now_ms())
        if isinstance(claimed, Refused):
            if claimed.status == Status.PROCESSING and claimed.claim == handoff_token(decision.token):
                # This record handed the request off, and its invocation ended before the message was
                # known to be sent (a crash): send it again. A duplicate message is harmless, the
                # worker's claim takes a hand-off once.
                if self._send(decision, claimed.handoff_step or "", log_keys):
                    return Outcome.HANDED_OFF
                try:
                    taken = self._records.take_back(
                        decision.request_id, decision.token, handoff_token(decision.token), self._now_ms()
                    )
                except ClaimLost:
                    return Outcome.HANDED_OFF  # a worker has it after all
                return self.run_claimed(decision, taken, log_keys, hand_off=False)
            # Redelivery of a finished request, or a request another record holds: nothing to do.
            logger.info("request not claimable (finished or claimed elsewhere); skipped", extra=log_keys)
            return Outcome.SKIPPED
        log_keys["attempt"] = claimed.attempts
        logger.info("request claimed", extra={**log_keys, "completedSteps": sorted(claimed.steps)})
        return self.run_claimed(decision, claimed, log_keys)

    def run_claimed(
        self,
        work: Work,
        claimed: Claimed,
        log_keys: dict[str, Any],
        slow: SlowDelivery | None = None,
        *,
        hand_off: bool = True,
    ) -> Outcome:
        """Run a claimed request's remaining steps and record the outcome (``slow``: in the slow lane;
        ``hand_off`` False: run long steps here too)."""
        try:
            return self._run(work, claimed, log_keys, slow, hand_off=hand_off and slow is None)
        except ClaimLost:
            logger.warning("claim lost mid-way; another invocation owns the request", extra=log_keys)
            return Outcome.CLAIM_LOST

    def _send(self, work: Work, step: str, log_keys: dict[str, Any]) -> bool:
        """Send the hand-off message; False if the queue cannot take it (unreachable, or no slow lane
        configured any more): the caller then takes the request back and runs the steps here, so an SQS
        outage costs latency, never a request (docs/slow-lane.md)."""
        if self._slow_work is None:
            logger.warning("a hand-off without the slow lane configured; running it here", extra=log_keys)
            return False
        try:
            self._slow_work.send(HandOff(work.request_id, handoff_token(work.token), work.shard, step or "?"))
        except Exception:  # BotoCoreError, ClientError: the SDK's own retries are spent
            logger.exception("the slow-work queue did not take the hand-off; running it here", extra=log_keys)
            return False
        logger.info("request handed off to the slow lane", extra={**log_keys, "step": step})
        return True

    def _run(
        self,
        work: Work,
        claimed: Claimed,
        log_keys: dict[str, Any],
        slow: SlowDelivery | None,
        *,
        hand_off: bool,
    ) -> Outcome:
        try:
            request = parse_request(claimed.request)
            # Off unless the deployment allows it: then `simulate` is only data in the body.
            simulation = Simulation.from_request(request) if self.config.allow_simulate else Simulation()
        except InvalidRequestError as error:
            return self._finish_failed(work, error, REQUEST_STEP, log_keys)

        # Resume: completed steps are not run again, but their summaries still count towards the result.
        outputs: dict[str, str] = {}
        pending: list[tuple[int, Step]] = []
        for number, step in enumerate(self._steps, start=1):
            done = claimed.steps.get(step.name)
            if done is None:
                pending.append((number, step))
            else:
                outputs.update(done.output)

        last_step: tuple[str, StepRecord] | None = None
        for index, (number, step) in enumerate(pending):
            ctx = StepContext(
                request_id=work.request_id,
                request=request,
                attempt=claimed.attempts,
                step=step.name,
                number=number,
            )
            threshold = self.config.slow_work_threshold_ms
            if hand_off and self._slow_work is not None and is_long(step, ctx, simulation, threshold):
                # Written first, then sent: a crash between the two leaves a hand-off that this record's
                # redelivery finds (its claim is refused on our hand-off token) and sends again.
                token = handoff_token(work.token)
                self._records.hand_off(work.request_id, work.token, token, step.name, self._now_ms())
                if self._send(work, step.name, log_keys):
                    return Outcome.HANDED_OFF
                # The queue did not take it: the request is this record's again, and runs on here.
                self._records.take_back(work.request_id, work.token, token, self._now_ms())
                hand_off = False
            try:
                simulation.before_step(
                    number=number,
                    first_number=pending[0][0],
                    total=len(self._steps),
                    attempt=claimed.attempts,
                    sleep=self._sleep,
                )
                output = bounded_summary(_as_mapping(step.run(ctx), step.name))
            except BusinessError as error:
                return self._finish_failed(work, error, step.name, log_keys)
            except Exception as error:  # TransientError, or a bug in the step: retried while retries remain
                if slow is not None:
                    return self._retry_or_fail_slow(work, slow, error, step.name, log_keys)
                return self._retry_or_fail(work, claimed, error, step.name, log_keys)
            record = StepRecord(at=self._now_ms(), attempt=claimed.attempts, output=output)
            outputs.update(output)
            if index == len(pending) - 1:
                # The last step is recorded by the same write that finishes the request: one write less,
                # and resume is not weakened (nothing can fail between the two).
                last_step = (step.name, record)
                break
            # Outside the business logic's error handling on purpose: if this write fails (DynamoDB
            # unreachable) the exception fails the record, and the item stays PROCESSING under this
            # record's claim, which its redelivery takes over.
            self._records.record_step(work.request_id, work.token, step.name, record)

        ttl = int(self._clock()) + self.config.retention_seconds
        self._records.succeed(
            work.request_id,
            work.token,
            bounded_summary(outputs),
            work.shard,
            self._now_ms(),
            ttl,
            last_step=last_step,
        )
        logger.info("request succeeded", extra=log_keys)
        return Outcome.SUCCEEDED

    def _finish_failed(self, work: Work, error: Exception, step: str, log_keys: dict[str, Any]) -> Outcome:
        info = error_info(error, step)
        self._records.fail(work.request_id, work.token, info, work.shard, self._now_ms())
        extra = {**log_keys, "errorType": info.type, "step": step, "transient": info.transient}
        if isinstance(error, StreamdeskError):
            logger.info("request failed", extra=extra)
        else:  # a bug, retried until the retries were spent: worth its traceback in the log
            logger.exception("request failed on an unexpected error", extra=extra)
        return Outcome.FAILED

    def _retry_or_fail(
        self, work: Work, claimed: Claimed, error: Exception, step: str, log_keys: dict[str, Any]
    ) -> Outcome:
        if self.config.retries_spent(claimed.attempts):
            return self._finish_failed(work, error, step, log_keys)
        info = error_info(error, step)
        self._records.release(work.request_id, work.token, info, work.shard, self._now_ms())
        if isinstance(error, TransientError):
            logger.warning("transient failure; the trigger will retry", extra={**log_keys, "step": step})
        else:
            logger.exception(
                "unexpected error in a step; the trigger will retry", extra={**log_keys, "step": step}
            )
        # Raised so that Powertools reports this record in batchItemFailures.
        raise error

    def _retry_or_fail_slow(
        self, work: Work, slow: SlowDelivery, error: Exception, step: str, log_keys: dict[str, Any]
    ) -> Outcome:
        """A transient failure in the slow lane: retried by the queue's redelivery (after its visibility
        timeout) until the last delivery the queue makes before its dead-letter queue; that one ends the
        request FAILED, so that it is kept for people (and a redrive resumes it through the stream)."""
        if slow.receive_count >= self.config.slow_work_max_receives:
            return self._finish_failed(work, error, step, log_keys)
        info = error_info(error, step)
        self._records.release_to_slow_lane(
            work.request_id, work.token, slow.handoff_token, info, self._now_ms()
        )
        logger.warning(
            "transient failure in the slow lane; the queue will deliver it again",
            extra={**log_keys, "step": step, "receiveCount": slow.receive_count},
        )
        raise error

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def parse_request(raw: str | None) -> dict[str, Any]:
    """The stored request body as a JSON object; :class:`InvalidRequestError` otherwise."""
    if raw is None:
        raise InvalidRequestError(f"the item has no '{item.REQUEST}' string attribute")
    try:
        request = json.loads(raw)
    except ValueError as error:
        raise InvalidRequestError(f"the request is not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidRequestError("the request is nested too deeply to parse") from None
    if not isinstance(request, dict):
        raise InvalidRequestError(f"the request must be a JSON object, not {type(request).__name__}")
    return request


def error_info(error: BaseException, step: str) -> ErrorInfo:
    """An error as the item records it, bounded by item.MAX_ERROR_MESSAGE_CHARS / MAX_TRACEBACK_CHARS."""
    error_type = error.error_type if isinstance(error, StreamdeskError) else type(error).__name__
    return ErrorInfo(
        type=error_type,
        message=head(str(error), item.MAX_ERROR_MESSAGE_CHARS),
        step=step,
        traceback=tail("".join(traceback.format_exception(error)), item.MAX_TRACEBACK_CHARS),
        transient=isinstance(error, TransientError),
    )


def _as_mapping(output: Mapping[str, Any] | None, step: str) -> Mapping[str, Any]:
    if output is None:
        return {}
    if not isinstance(output, Mapping):
        raise TypeError(f"step {step!r} returned {type(output).__name__}, expected a dict or None")
    return output
