"""How Lambda reads a stream invocation's outcome, and the message it sends to the on-failure destination
when it gives up on a batch (used by the trigger twin, backend/local/batch_delivery.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

RESULT_OK: Final = "OK"
RESULT_PARTIAL: Final = "PARTIAL"
RESULT_FUNCTION_ERROR: Final = "FUNCTION_ERROR"
RETRIES_EXHAUSTED: Final = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED: Final = "RecordAgeExceeded"


@dataclass
class Outcome:
    result: str
    failed_index: int | None = None  # PARTIAL: index of the lowest failed record
    error: str | None = None
    function_error: str | None = None  # "Unhandled" when the function raised
    request_id: str = ""


def read_response(response: Any, sequence_numbers: list[str], report_batch_item_failures: bool) -> Outcome:
    """The outcome of an invocation that returned ``response`` for records with ``sequence_numbers``."""
    if not report_batch_item_failures or response is None:
        return Outcome(RESULT_OK)
    if not isinstance(response, dict):
        return Outcome(RESULT_FUNCTION_ERROR, error=f"invalid batch response {response!r:.200}")
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return Outcome(RESULT_OK)
    index = {sequence: i for i, sequence in enumerate(sequence_numbers)}
    if not isinstance(failures, list):
        return Outcome(RESULT_FUNCTION_ERROR, error="batchItemFailures is not a list")
    lowest: int | None = None
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in index:
            # Lambda: an empty, null or unknown identifier fails the whole batch.
            return Outcome(RESULT_FUNCTION_ERROR, error=f"invalid batch item failure {failure!r:.200}")
        lowest = index[identifier] if lowest is None else min(lowest, index[identifier])
    return Outcome(RESULT_PARTIAL, failed_index=lowest, error=f"{len(failures)} item failure(s)")


def iso(epoch: float, milliseconds: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if milliseconds:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class GivenUp:
    """A batch (or part of one) the mapping gave up on, as the on-failure message describes it."""

    condition: str  # RETRIES_EXHAUSTED | RECORD_AGE_EXCEEDED
    invocations: int
    shard_id: str
    stream_arn: str
    first_sequence: str
    last_sequence: str
    first_created: float  # epoch seconds
    last_created: float
    size: int


def failure_message(given_up: GivenUp, last: Outcome | None, function_arn: str, now: float) -> dict[str, Any]:
    """What Lambda sends to an SQS/SNS on-failure destination for a DynamoDB stream batch."""
    return {
        "requestContext": {
            "requestId": last.request_id if last else str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": given_up.condition,
            "approximateInvokeCount": given_up.invocations,
        },
        "responseContext": {
            "statusCode": 200 if last else None,
            "executedVersion": "$LATEST" if last else None,
            "functionError": last.function_error if last else None,
        },
        "version": "1.0",
        "timestamp": iso(now, milliseconds=True),
        "DDBStreamBatchInfo": {
            "shardId": given_up.shard_id,
            "startSequenceNumber": given_up.first_sequence,
            "endSequenceNumber": given_up.last_sequence,
            "approximateArrivalOfFirstRecord": iso(given_up.first_created),
            "approximateArrivalOfLastRecord": iso(given_up.last_created),
            "batchSize": given_up.size,
            "streamArn": given_up.stream_arn,
        },
    }
