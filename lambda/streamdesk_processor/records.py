"""The processor's writes to a request item, each one a conditional UpdateItem (the claim protocol of
docs/internal-contracts.md). Every write but the claim requires that the claim is still ours, so a late or
duplicate invocation can never overwrite an outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from streamdesk_processor import item
from streamdesk_processor.item import STEP_AT, STEP_ATTEMPT, STEP_OUTPUT, Status

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


_CONDITION_FAILED = "ConditionalCheckFailedException"


class ClaimLost(RuntimeError):
    """The item is no longer PROCESSING under our claim (another invocation took over, or it finished)."""


@dataclass(frozen=True)
class StepRecord:
    at: int
    attempt: int
    output: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claimed:
    """The item as the claim left it."""

    request_id: str
    request: str | None
    attempts: int
    steps: dict[str, StepRecord]


@dataclass(frozen=True)
class Refused:
    """A claim the condition refused, and what the item held then (to tell a hand-off of one's own, or a
    worker still holding its lease, from a request that is finished or someone else's)."""

    status: str | None
    claim: str | None
    lease_until: int | None
    handoff_step: str | None = None


@dataclass(frozen=True)
class ErrorInfo:
    """The recorded shape of an error (already bounded)."""

    type: str
    message: str
    step: str
    traceback: str
    transient: bool

    def attribute(self) -> dict[str, Any]:
        return {
            "M": {
                item.ERROR_TYPE: {"S": self.type},
                item.ERROR_MESSAGE: {"S": self.message},
                item.ERROR_STEP: {"S": self.step},
                item.ERROR_TRACEBACK: {"S": self.traceback},
                item.ERROR_TRANSIENT: {"BOOL": self.transient},
            }
        }


class RequestRecords:
    """Conditional writes to the requests table on behalf of one stream record's claim."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(self, request_id: str, token: str, shard: str, now_ms: int) -> Claimed | Refused:
        """Take the request for processing; :class:`Refused` if it is finished or claimed by another record.

        Succeeds when the request is PENDING, or PROCESSING under this same token (an earlier invocation
        with this record died mid-way: the redelivery takes over instead of leaving the item stuck).
        """
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={item.ID: {"S": request_id}},
                UpdateExpression=(
                    "SET #status = :processing, #attempts = if_not_exists(#attempts, :zero) + :one, "
                    "#startedAt = :now, #updatedAt = :now, #claim = :token, #stateBucket = :open, "
                    "#steps = if_not_exists(#steps, :noSteps)"
                ),
                ConditionExpression=(
                    "attribute_exists(#id) AND "
                    "(#status = :pending OR (#status = :processing AND #claim = :token))"
                ),
                ExpressionAttributeNames={
                    "#id": item.ID,
                    "#status": item.STATUS,
                    "#attempts": item.ATTEMPTS,
                    "#startedAt": item.STARTED_AT,
                    "#updatedAt": item.UPDATED_AT,
                    "#claim": item.CLAIM,
                    "#stateBucket": item.STATE_BUCKET,
                    "#steps": item.STEPS,
                },
                ExpressionAttributeValues={
                    ":processing": {"S": Status.PROCESSING.value},
                    ":pending": {"S": Status.PENDING.value},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":now": {"N": str(now_ms)},
                    ":token": {"S": token},
                    ":open": {"S": item.state_bucket(Status.PROCESSING.value, shard)},
                    ":noSteps": {"M": {}},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _condition_failed(error):
                return _refused(error)
            raise
        return _claimed(request_id, answer["Attributes"])

    def take_over(
        self,
        request_id: str,
        handoff_token: str,
        delivery_token: str,
        *,
        new_attempt: bool,
        now_ms: int,
        lease_until: int,
    ) -> Claimed | Refused:
        """The slow-work worker's claim of a handed-off request (docs/slow-lane.md).

        Succeeds while the request is PROCESSING and either waits under ``handoff_token`` or is held by an
        earlier delivery of the same hand-off whose lease has passed (that worker died or timed out). A
        duplicate delivery while another one holds a live lease, or a message of a hand-off since
        finished or replaced, is refused. ``new_attempt``: a redelivery counts as a new attempt.
        """
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={item.ID: {"S": request_id}},
                # A new attempt (a redelivery) starts now, as the stream's claim records it.
                UpdateExpression=(
                    "SET #claim = :delivery, #lease = :leaseUntil, #updatedAt = :now, "
                    "#attempts = if_not_exists(#attempts, :zero) + :increment"
                    + (", #startedAt = :now" if new_attempt else "")
                ),
                ConditionExpression=(
                    "#status = :processing AND (#claim = :handoff OR "
                    "(begins_with(#claim, :deliveryPrefix) AND #lease < :now))"
                ),
                ExpressionAttributeNames={
                    "#status": item.STATUS,
                    "#claim": item.CLAIM,
                    "#lease": item.LEASE_UNTIL,
                    "#updatedAt": item.UPDATED_AT,
                    "#attempts": item.ATTEMPTS,
                    **({"#startedAt": item.STARTED_AT} if new_attempt else {}),
                },
                ExpressionAttributeValues={
                    ":processing": {"S": Status.PROCESSING.value},
                    ":handoff": {"S": handoff_token},
                    ":deliveryPrefix": {"S": handoff_token + "/"},
                    ":delivery": {"S": delivery_token},
                    ":leaseUntil": {"N": str(lease_until)},
                    ":now": {"N": str(now_ms)},
                    ":zero": {"N": "0"},
                    ":increment": {"N": "1" if new_attempt else "0"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _condition_failed(error):
                return _refused(error)
            raise
        return _claimed(request_id, answer["Attributes"])

    def hand_off(self, request_id: str, token: str, handoff_token: str, step: str, now_ms: int) -> None:
        """Leave the request to the slow lane before ``step``: the claim becomes the hand-off token (the
        status stays PROCESSING). One write, under this record's claim, before the message is sent."""
        self._update(
            request_id,
            token,
            "SET #claim = :handoff, #handoff = :entry, #updatedAt = :now",
            names={"#claim": item.CLAIM, "#handoff": item.HANDOFF, "#updatedAt": item.UPDATED_AT},
            values={
                ":handoff": {"S": handoff_token},
                ":now": {"N": str(now_ms)},
                ":entry": {
                    "M": {
                        item.HANDOFF_TOKEN: {"S": handoff_token},
                        item.HANDOFF_STEP: {"S": step},
                        item.HANDOFF_AT: {"N": str(now_ms)},
                    }
                },
            },
        )

    def take_back(self, request_id: str, token: str, handoff_token: str, now_ms: int) -> Claimed:
        """Undo a hand-off whose message could not be sent (the queue unreachable): the claim is this
        record's again and the steps run here. Conditional on no worker having taken it meanwhile
        (:class:`ClaimLost` if one has: the message did arrive, and the worker owns the request)."""
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key={item.ID: {"S": request_id}},
                UpdateExpression="SET #claim = :token, #updatedAt = :now REMOVE #handoff",
                ConditionExpression="#status = :processing AND #claim = :handoff",
                ExpressionAttributeNames={
                    "#claim": item.CLAIM,
                    "#updatedAt": item.UPDATED_AT,
                    "#handoff": item.HANDOFF,
                    "#status": item.STATUS,
                },
                ExpressionAttributeValues={
                    ":token": {"S": token},
                    ":now": {"N": str(now_ms)},
                    ":processing": {"S": Status.PROCESSING.value},
                    ":handoff": {"S": handoff_token},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _condition_failed(error):
                raise ClaimLost(f"request {request_id} was taken by the slow lane meanwhile") from None
            raise
        return _claimed(request_id, answer["Attributes"])

    def release_to_slow_lane(
        self, request_id: str, token: str, handoff_token: str, error: ErrorInfo, now_ms: int
    ) -> None:
        """After a transient failure in the slow lane: back to waiting under the hand-off token (still
        PROCESSING), with ``lastError``; the queue redelivers the message after its visibility timeout."""
        self._update(
            request_id,
            token,
            "SET #claim = :handoff, #updatedAt = :now, #lastError = :error REMOVE #lease",
            names={
                "#claim": item.CLAIM,
                "#updatedAt": item.UPDATED_AT,
                "#lastError": item.LAST_ERROR,
                "#lease": item.LEASE_UNTIL,
            },
            values={
                ":handoff": {"S": handoff_token},
                ":now": {"N": str(now_ms)},
                ":error": error.attribute(),
            },
        )

    def record_step(
        self,
        request_id: str,
        token: str,
        name: str,
        record: StepRecord,
    ) -> None:
        """Record one completed step (``steps.<name>``)."""
        entry = _step_entry(record)
        self._update(
            request_id,
            token,
            "SET #steps.#step = :entry, #updatedAt = :now",
            names={"#steps": item.STEPS, "#step": name, "#updatedAt": item.UPDATED_AT},
            values={":entry": entry, ":now": {"N": str(record.at)}},
        )

    def succeed(
        self,
        request_id: str,
        token: str,
        result: Mapping[str, str],
        shard: str,
        now_ms: int,
        ttl: int,
        *,
        last_step: tuple[str, StepRecord] | None = None,
    ) -> None:
        """SUCCEEDED with the result and a TTL (epoch seconds); ``last_step`` (name, record) is recorded by
        the same write, so a request costs one write less than a step record followed by the finish."""
        step_names: dict[str, str] = {}
        step_values: dict[str, Any] = {}
        step_set = ""
        if last_step is not None:
            step_names = {"#steps": item.STEPS, "#step": last_step[0]}
            step_values = {":entry": _step_entry(last_step[1])}
            step_set = ", #steps.#step = :entry"
        self._update(
            request_id,
            token,
            "SET #status = :succeeded, #finishedAt = :now, #updatedAt = :now, #ttl = :ttl, "
            f"#result = :result, #stateBucket = :bucket{step_set} "
            "REMOVE #claim, #error, #lastError, #handoff, #lease",
            names={
                **step_names,
                "#status": item.STATUS,
                "#finishedAt": item.FINISHED_AT,
                "#updatedAt": item.UPDATED_AT,
                "#ttl": item.TTL,
                "#result": item.RESULT,
                "#claim": item.CLAIM,
                "#error": item.ERROR,
                "#lastError": item.LAST_ERROR,
                "#stateBucket": item.STATE_BUCKET,
                "#handoff": item.HANDOFF,
                "#lease": item.LEASE_UNTIL,
            },
            values={
                ":succeeded": {"S": Status.SUCCEEDED.value},
                ":bucket": {"S": item.state_bucket(Status.SUCCEEDED.value, shard)},
                ":now": {"N": str(now_ms)},
                ":ttl": {"N": str(ttl)},
                ":result": _string_map(result),
                **step_values,
            },
        )

    def fail(self, request_id: str, token: str, error: ErrorInfo, shard: str, now_ms: int) -> None:
        """FAILED with the error; no TTL, so the item stays for people to inspect (and redrive)."""
        self._update(
            request_id,
            token,
            "SET #status = :failed, #finishedAt = :now, #updatedAt = :now, #error = :error, "
            "#stateBucket = :open REMOVE #claim, #handoff, #lease",
            names={
                "#status": item.STATUS,
                "#finishedAt": item.FINISHED_AT,
                "#updatedAt": item.UPDATED_AT,
                "#error": item.ERROR,
                "#stateBucket": item.STATE_BUCKET,
                "#claim": item.CLAIM,
                "#handoff": item.HANDOFF,
                "#lease": item.LEASE_UNTIL,
            },
            values={
                ":failed": {"S": Status.FAILED.value},
                ":now": {"N": str(now_ms)},
                ":error": error.attribute(),
                ":open": {"S": item.state_bucket(Status.FAILED.value, shard)},
            },
        )

    def release(self, request_id: str, token: str, error: ErrorInfo, shard: str, now_ms: int) -> None:
        """Back to PENDING after a failure worth retrying; the trigger re-sends the record."""
        self._update(
            request_id,
            token,
            "SET #status = :pending, #updatedAt = :now, #lastError = :error, #stateBucket = :open "
            "REMOVE #claim",
            names={
                "#status": item.STATUS,
                "#updatedAt": item.UPDATED_AT,
                "#lastError": item.LAST_ERROR,
                "#stateBucket": item.STATE_BUCKET,
                "#claim": item.CLAIM,
            },
            values={
                ":pending": {"S": Status.PENDING.value},
                ":now": {"N": str(now_ms)},
                ":error": error.attribute(),
                ":open": {"S": item.state_bucket(Status.PENDING.value, shard)},
            },
        )

    def _update(
        self,
        request_id: str,
        token: str,
        expression: str,
        *,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> None:
        """An update that only applies while the item is PROCESSING under ``token``."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={item.ID: {"S": request_id}},
                UpdateExpression=expression,
                ConditionExpression="#cStatus = :cProcessing AND #cClaim = :cToken",
                ExpressionAttributeNames={**names, "#cStatus": item.STATUS, "#cClaim": item.CLAIM},
                ExpressionAttributeValues={
                    **values,
                    ":cProcessing": {"S": Status.PROCESSING.value},
                    ":cToken": {"S": token},
                },
            )
        except ClientError as error:
            if _condition_failed(error):
                raise ClaimLost(f"request {request_id} is no longer processing under claim {token}") from None
            raise


def _claimed(request_id: str, attributes: Mapping[str, Any]) -> Claimed:
    return Claimed(
        request_id=request_id,
        request=attributes.get(item.REQUEST, {}).get("S"),
        attempts=int(attributes[item.ATTEMPTS]["N"]),
        steps=_steps(attributes.get(item.STEPS, {}).get("M", {})),
    )


def _refused(error: ClientError) -> Refused:
    """What the item held when a claim's condition failed (nothing, if it does not exist)."""
    old: Mapping[str, Any] = error.response.get("Item") or {}  # type: ignore[assignment]
    lease = old.get(item.LEASE_UNTIL, {}).get("N")
    return Refused(
        status=old.get(item.STATUS, {}).get("S"),
        claim=old.get(item.CLAIM, {}).get("S"),
        lease_until=int(lease) if lease is not None else None,
        handoff_step=old.get(item.HANDOFF, {}).get("M", {}).get(item.HANDOFF_STEP, {}).get("S"),
    )


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == _CONDITION_FAILED


def _step_entry(record: StepRecord) -> dict[str, Any]:
    return {
        "M": {
            STEP_AT: {"N": str(record.at)},
            STEP_ATTEMPT: {"N": str(record.attempt)},
            STEP_OUTPUT: _string_map(record.output),
        }
    }


def _string_map(values: Mapping[str, str]) -> dict[str, Any]:
    return {"M": {key: {"S": value} for key, value in values.items()}}


def _steps(raw: Mapping[str, Any]) -> dict[str, StepRecord]:
    steps: dict[str, StepRecord] = {}
    for name, value in raw.items():
        entry = value.get("M", {})
        output = entry.get(STEP_OUTPUT, {}).get("M", {})
        steps[name] = StepRecord(
            at=int(entry.get(STEP_AT, {}).get("N", "0")),
            attempt=int(entry.get(STEP_ATTEMPT, {}).get("N", "0")),
            output={key: str(v.get("S", "")) for key, v in output.items()},
        )
    return steps
