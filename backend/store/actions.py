"""The writes people make on requests: redrive (retry) a failed request, and hand a stuck one back.

The data layer's writes (the reads are :mod:`backend.store.reader`), under the same error model
(:mod:`backend.store.calls`): an outage, a missing table or refused credentials raise ``StoreUnavailable``,
so a bulk redrive stops at once with one message instead of failing request by request.

Every change is a conditional update, is recorded on the item (who, when) and requires an operator. A
redrive moves ``FAILED`` back to ``PENDING``; the stream's MODIFY record (old image FAILED, new PENDING) is
exactly what the trigger's filter passes, so the request is processed again, resuming after its last
completed step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from streamdesk_processor import item as attr
from streamdesk_processor.item import Status

from backend.roles import Actor, require_operator
from backend.store.calls import TableCalls

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Bulk redrives go in bounded batches: a whole error group of thousands must not flood the table or the
# trigger at once, and each request gets its own outcome.
REDRIVE_BATCH_SIZE = 25
REDRIVE_CONCURRENCY = 4


class Outcome(StrEnum):
    REDRIVEN = "redriven"
    NOT_FAILED = "not failed"  # its status changed meanwhile: nothing was changed
    NOT_FOUND = "not found"
    MARKED_FAILED = "marked failed"  # a stuck request handed back (then redriven)
    NOT_STUCK = "not stuck"  # it moved on meanwhile: nothing was changed
    ERROR = "error"


@dataclass(frozen=True)
class ActionResult:
    request_id: str
    outcome: Outcome
    detail: str = ""


def _bucket(status: Status, item: dict[str, Any]) -> str:
    """The item's ``stateBucket`` once it is in ``status`` (its shard does not change)."""
    return attr.state_bucket(status.value, attr.shard_of(item.get(attr.TIME_BUCKET, {}).get("S")))


class RequestActions:
    """Conditional writes on request items, each one allowed to operators only."""

    def __init__(self, client: DynamoDBClient, table: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._call = TableCalls(client, table)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _read(self, request_id: str) -> dict[str, Any] | None:
        response = self._call(
            self._client.get_item,
            TableName=self._table,
            Key={attr.ID: {"S": request_id}},
            ProjectionExpression="#s, #tb",
            ExpressionAttributeNames={"#s": attr.STATUS, "#tb": attr.TIME_BUCKET},
            ConsistentRead=True,
        )
        found: dict[str, Any] | None = response.get("Item")
        return found

    def _update_current(
        self,
        request_id: str,
        refused: Outcome,
        update: Callable[[dict[str, Any], int], dict[str, Any]],
        done: Outcome,
    ) -> ActionResult:
        """Read the item, then apply ``update(current, now_ms)`` (UpdateItem arguments with a condition).

        A missing item is NOT_FOUND; a failed condition is ``refused`` (nothing changed), with the status
        the item had; DynamoDB out of reach raises ``StoreUnavailable``.
        """
        current: dict[str, Any] | None = None
        try:
            current = self._read(request_id)
            if current is None:
                return ActionResult(request_id, Outcome.NOT_FOUND)
            self._call(
                self._client.update_item,
                TableName=self._table,
                Key={attr.ID: {"S": request_id}},
                **update(current, self._now_ms()),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                status = (current or {}).get(attr.STATUS, {}).get("S", "?")
                return ActionResult(request_id, refused, f"status is {status}")
            return ActionResult(request_id, Outcome.ERROR, str(error))
        return ActionResult(request_id, done)

    # ------------------------------------------------------------------------------------ redrive
    def redrive(self, request_id: str, actor: Actor) -> ActionResult:
        """Move one FAILED request back to PENDING (changes nothing if it is no longer FAILED)."""
        require_operator(actor, "retry requests")

        def update(current: dict[str, Any], now: int) -> dict[str, Any]:
            return {
                "ConditionExpression": "#s = :failed",
                "UpdateExpression": (
                    "SET #s = :pending, #bucket = :bucket, #upd = :now, #rat = :now, #rby = :by, "
                    "#rn = if_not_exists(#rn, :zero) + :one, #last = if_not_exists(#err, :noerr) "
                    "REMOVE #err, #fin"
                ),
                "ExpressionAttributeNames": {
                    "#s": attr.STATUS,
                    "#bucket": attr.STATE_BUCKET,
                    "#upd": attr.UPDATED_AT,
                    "#rat": attr.REDRIVEN_AT,
                    "#rby": attr.REDRIVEN_BY,
                    "#rn": attr.REDRIVES,
                    "#last": attr.LAST_ERROR,
                    "#err": attr.ERROR,
                    "#fin": attr.FINISHED_AT,
                },
                "ExpressionAttributeValues": {
                    ":failed": {"S": Status.FAILED.value},
                    ":pending": {"S": Status.PENDING.value},
                    ":bucket": {"S": _bucket(Status.PENDING, current)},
                    ":now": {"N": str(now)},
                    ":by": {"S": actor.name},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    # A FAILED item without a recorded error (written by hand, an older schema) can be
                    # retried too: copying a missing attribute would fail the whole update.
                    ":noerr": {"M": {}},
                },
            }

        return self._update_current(request_id, Outcome.NOT_FAILED, update, Outcome.REDRIVEN)

    def redrive_many(
        self,
        request_ids: Iterable[str],
        actor: Actor,
        on_batch: Callable[[list[ActionResult]], None] | None = None,
    ) -> list[ActionResult]:
        """Redrive many requests in bounded batches; one result per request, in the order given."""
        require_operator(actor, "retry requests")
        ids = list(dict.fromkeys(request_ids))  # each request once, order kept
        results: list[ActionResult] = []
        with ThreadPoolExecutor(max_workers=REDRIVE_CONCURRENCY) as pool:
            for start in range(0, len(ids), REDRIVE_BATCH_SIZE):
                batch = ids[start : start + REDRIVE_BATCH_SIZE]
                done = list(pool.map(lambda request_id: self.redrive(request_id, actor), batch))
                results.extend(done)
                if on_batch is not None:
                    on_batch(done)
        return results

    # --------------------------------------------------------------------------------- stuck ones
    def hand_back_stuck(
        self, request_id: str, expected: Status, seen_updated_at: int | None, reason: str, actor: Actor
    ) -> ActionResult:
        """Mark a stuck PENDING/PROCESSING request FAILED (error type ``Stuck``), then redrive it.

        The condition (still ``expected``, and ``updatedAt`` still the value seen when it was judged stuck)
        makes this a no-op for a request that moved on meanwhile. The FAILED -> PENDING step produces the
        stream record the trigger's filter passes: the only way back for a request whose own record is gone
        from the stream.
        """
        require_operator(actor, "reconcile stuck requests")

        def update(current: dict[str, Any], now: int) -> dict[str, Any]:
            return {
                "ConditionExpression": "#s = :expected AND "
                + ("#upd = :seen" if seen_updated_at is not None else "attribute_not_exists(#upd)"),
                "UpdateExpression": "SET #s = :failed, #bucket = :bucket, #upd = :now, #fin = :now, "
                "#err = :err REMOVE #claim",
                "ExpressionAttributeNames": {
                    "#s": attr.STATUS,
                    "#bucket": attr.STATE_BUCKET,
                    "#upd": attr.UPDATED_AT,
                    "#fin": attr.FINISHED_AT,
                    "#err": attr.ERROR,
                    "#claim": attr.CLAIM,
                },
                "ExpressionAttributeValues": {
                    ":expected": {"S": expected.value},
                    **({":seen": {"N": str(seen_updated_at)}} if seen_updated_at is not None else {}),
                    ":failed": {"S": Status.FAILED.value},
                    ":bucket": {"S": _bucket(Status.FAILED, current)},
                    ":now": {"N": str(now)},
                    ":err": {
                        "M": {
                            attr.ERROR_TYPE: {"S": "Stuck"},
                            attr.ERROR_MESSAGE: {
                                "S": f"{reason} (handed back by {actor.name})"[: attr.MAX_ERROR_MESSAGE_CHARS]
                            },
                            attr.ERROR_STEP: {"S": ""},
                            attr.ERROR_TRACEBACK: {"S": ""},
                            attr.ERROR_TRANSIENT: {"BOOL": True},
                        }
                    },
                },
            }

        marked = self._update_current(request_id, Outcome.NOT_STUCK, update, Outcome.MARKED_FAILED)
        if marked.outcome is not Outcome.MARKED_FAILED:
            return marked
        redriven = self.redrive(request_id, actor)
        if redriven.outcome is not Outcome.REDRIVEN:
            return ActionResult(request_id, Outcome.MARKED_FAILED, f"redrive: {redriven.outcome}")
        return redriven
