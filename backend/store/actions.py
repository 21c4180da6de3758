"""The writes people make on requests: redrive (retry) a failed request, resolve a failure without a retry,
cancel a pending request, hand a stuck one back, and add a note.

The data layer's writes (the reads are :mod:`backend.store.reader`), under the same error model
(:mod:`backend.store.calls`): an outage, a missing table or refused credentials raise ``StoreUnavailable``,
so a bulk redrive stops at once with one message instead of failing request by request.

Every change is a conditional update, is recorded on the item's trail (who, when, what: see
:mod:`backend.store.trail`) in the same write, and requires an operator. A redrive moves ``FAILED`` (or
``RESOLVED``) back to ``PENDING``; the stream's MODIFY record (old image FAILED, new PENDING) is
exactly what the trigger's filter passes, so the request is processed again, resuming after its last
completed step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from streamdesk_processor import item as attr
from streamdesk_processor.item import ResolveReason, Status, TrailAction

from backend.roles import Actor, require_operator
from backend.store import trail
from backend.store.calls import TableCalls

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Bulk redrives go in bounded batches: a whole error group of thousands must not flood the table or the
# trigger at once, and each request gets its own outcome.
REDRIVE_BATCH_SIZE = 25
REDRIVE_CONCURRENCY = 4
DEFAULT_CLOSED_RETENTION_DAYS = 30  # infra/template.yaml's ClosedRetentionDays default
SECONDS_PER_DAY = 86_400


class Outcome(StrEnum):
    REDRIVEN = "redriven"
    NOT_FAILED = "not failed"  # its status changed meanwhile: nothing was changed
    NOT_FOUND = "not found"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"
    NOT_PENDING = "not pending"  # already processing or finished: nothing was changed
    NOTED = "noted"
    REOPENED = "reopened"
    NOT_RESOLVED = "not resolved"
    TRAIL_FULL = "trail full"  # the item holds MAX_TRAIL_ENTRIES already: the note was not added
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


def _status_change(
    current: dict[str, Any],
    now: int,
    *,
    condition: str,
    to: Status,
    trail_values: Mapping[str, Any],
    sets: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    remove: Sequence[str] = (),
) -> dict[str, Any]:
    """UpdateItem arguments that move an item to ``to`` if ``condition`` holds: the status, its state
    bucket, ``updatedAt`` and a trail entry in one write, plus ``sets`` (``"#name": ":value"``) and
    ``remove`` (``"#name"``) with their ``names`` and ``values``."""
    assignments = ["#s = :to", "#bucket = :bucket", "#upd = :now"]
    assignments += [f"{name} = {value}" for name, value in (sets or {}).items()]
    expression = "SET " + ", ".join([*assignments, trail.APPEND])
    if remove:
        expression += " REMOVE " + ", ".join(remove)
    return {
        "ConditionExpression": condition,
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {
            "#s": attr.STATUS,
            "#bucket": attr.STATE_BUCKET,
            "#upd": attr.UPDATED_AT,
            **(names or {}),
            **trail.NAMES,
        },
        "ExpressionAttributeValues": {
            ":to": {"S": to.value},
            ":bucket": {"S": _bucket(to, current)},
            ":now": {"N": str(now)},
            **(values or {}),
            **trail_values,
        },
    }


class RequestActions:
    """Conditional writes on request items, each one allowed to operators only."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        clock: Callable[[], float] = time.time,
        closed_retention_days: int = DEFAULT_CLOSED_RETENTION_DAYS,
    ) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._closed_retention_s = closed_retention_days * SECONDS_PER_DAY
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
                return ActionResult(request_id, refused, _status_detail(status))
            return ActionResult(request_id, Outcome.ERROR, str(error))
        return ActionResult(request_id, done)

    # ------------------------------------------------------------------------------------ redrive
    def redrive(self, request_id: str, actor: Actor) -> ActionResult:
        """Move one FAILED request back to PENDING (changes nothing in any other state).

        A RESOLVED one is an explicit retry of a closed failure: it is reopened first (:meth:`reopen`).
        """
        require_operator(actor, "retry requests")
        result = self._redrive_failed(request_id, actor)
        if result.outcome is Outcome.NOT_FAILED and result.detail == _status_detail(Status.RESOLVED):
            reopened = self.reopen(request_id, actor)
            return (
                self._redrive_failed(request_id, actor) if reopened.outcome is Outcome.REOPENED else reopened
            )
        return result

    def _redrive_failed(self, request_id: str, actor: Actor) -> ActionResult:
        def update(current: dict[str, Any], now: int) -> dict[str, Any]:
            return _status_change(
                current,
                now,
                condition="#s = :failed",
                to=Status.PENDING,
                sets={
                    "#rat": ":now",
                    "#rby": ":by",
                    "#rn": "if_not_exists(#rn, :zero) + :one",
                    "#last": "if_not_exists(#err, :noerr)",
                },
                remove=("#err", "#fin", "#ttl", "#res"),
                names={
                    "#rat": attr.REDRIVEN_AT,
                    "#rby": attr.REDRIVEN_BY,
                    "#rn": attr.REDRIVES,
                    "#last": attr.LAST_ERROR,
                    "#err": attr.ERROR,
                    "#fin": attr.FINISHED_AT,
                    "#ttl": attr.TTL,
                    "#res": attr.RESOLUTION,
                },
                values={
                    ":failed": {"S": Status.FAILED.value},
                    ":by": {"S": actor.name},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    # A FAILED item without a recorded error (written by hand, an older schema) can be
                    # retried too: copying a missing attribute would fail the whole update.
                    ":noerr": {"M": {}},
                },
                trail_values=trail.entry_values(TrailAction.RETRY, actor.name, now),
            )

        return self._update_current(request_id, Outcome.NOT_FAILED, update, Outcome.REDRIVEN)

    def redrive_many(
        self,
        request_ids: Iterable[str],
        actor: Actor,
        on_batch: Callable[[list[ActionResult]], None] | None = None,
    ) -> list[ActionResult]:
        """Redrive many requests in bounded batches; one result per request, in the order given."""
        require_operator(actor, "retry requests")
        return _in_batches(request_ids, lambda request_id: self.redrive(request_id, actor), on_batch)

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
            seen = "#upd = :seen" if seen_updated_at is not None else "attribute_not_exists(#upd)"
            message = f"{reason} (handed back by {actor.name})"[: attr.MAX_ERROR_MESSAGE_CHARS]
            # Never while a slow-lane worker holds a live lease: it is running a step right now (its
            # writes do not move updatedAt during a long step). The hand-off's own attributes go with the
            # claim, so that the redrive starts clean.
            return _status_change(
                current,
                now,
                condition=f"#s = :expected AND {seen} AND (attribute_not_exists(#lease) OR #lease < :now)",
                to=Status.FAILED,
                sets={"#fin": ":now", "#err": ":err"},
                remove=("#claim", "#handoff", "#lease"),
                names={
                    "#fin": attr.FINISHED_AT,
                    "#err": attr.ERROR,
                    "#claim": attr.CLAIM,
                    "#handoff": attr.HANDOFF,
                    "#lease": attr.LEASE_UNTIL,
                },
                values={
                    ":expected": {"S": expected.value},
                    **({":seen": {"N": str(seen_updated_at)}} if seen_updated_at is not None else {}),
                    ":err": {
                        "M": {
                            attr.ERROR_TYPE: {"S": "Stuck"},
                            attr.ERROR_MESSAGE: {"S": message},
                            attr.ERROR_STEP: {"S": ""},
                            attr.ERROR_TRACEBACK: {"S": ""},
                            attr.ERROR_TRANSIENT: {"BOOL": True},
                        }
                    },
                },
                trail_values=trail.entry_values(TrailAction.RECONCILE, actor.name, now, reason),
            )

        marked = self._update_current(request_id, Outcome.NOT_STUCK, update, Outcome.MARKED_FAILED)
        if marked.outcome is not Outcome.MARKED_FAILED:
            return marked
        redriven = self.redrive(request_id, actor)
        if redriven.outcome is not Outcome.REDRIVEN:
            return ActionResult(request_id, Outcome.MARKED_FAILED, f"redrive: {redriven.outcome}")
        return redriven

    # --------------------------------------------------------------------------- close, cancel, note
    def _closed_ttl(self, now_ms: int) -> dict[str, str]:
        return {"N": str(now_ms // 1000 + self._closed_retention_s)}

    def resolve(self, request_id: str, reason: ResolveReason, note: str, actor: Actor) -> ActionResult:
        """Close one FAILED request without retrying it: RESOLVED, with who/when/why and a TTL.

        It leaves the open failures (its ``stateBucket`` moves to RESOLVED), keeps its error for the
        record, and can still be retried explicitly (:meth:`redrive`).
        """
        require_operator(actor, "resolve failures")
        reason, text = resolution_input(reason, note)  # refused before anything is written

        def update(current: dict[str, Any], now: int) -> dict[str, Any]:
            resolution = {
                attr.RESOLUTION_REASON: {"S": reason.value},
                attr.RESOLUTION_NOTE: {"S": text},
                attr.RESOLUTION_BY: {"S": actor.name},
                attr.RESOLUTION_AT: {"N": str(now)},
            }
            return _status_change(
                current,
                now,
                condition="#s = :failed",
                to=Status.RESOLVED,
                sets={"#ttl": ":ttl", "#res": ":res"},
                names={"#ttl": attr.TTL, "#res": attr.RESOLUTION},
                values={
                    ":failed": {"S": Status.FAILED.value},
                    ":ttl": self._closed_ttl(now),
                    ":res": {"M": resolution},
                },
                trail_values=trail.entry_values(
                    TrailAction.RESOLVE, actor.name, now, _joined(reason.value, text)
                ),
            )

        return self._update_current(request_id, Outcome.NOT_FAILED, update, Outcome.RESOLVED)

    def reopen(self, request_id: str, actor: Actor) -> ActionResult:
        """RESOLVED -> FAILED: the failure is open again (no TTL, no resolution; the trail keeps both)."""
        require_operator(actor, "reopen failures")

        def update(current: dict[str, Any], now: int) -> dict[str, Any]:
            return _status_change(
                current,
                now,
                condition="#s = :resolved",
                to=Status.FAILED,
                remove=("#ttl", "#res"),
                names={"#ttl": attr.TTL, "#res": attr.RESOLUTION},
                values={":resolved": {"S": Status.RESOLVED.value}},
                trail_values=trail.entry_values(TrailAction.REOPEN, actor.name, now),
            )

        return self._update_current(request_id, Outcome.NOT_RESOLVED, update, Outcome.REOPENED)

    def resolve_many(
        self,
        request_ids: Iterable[str],
        reason: ResolveReason,
        note: str,
        actor: Actor,
        on_batch: Callable[[list[ActionResult]], None] | None = None,
    ) -> list[ActionResult]:
        """Resolve many failures in bounded batches; one result per request, in the order given."""
        require_operator(actor, "resolve failures")
        reason, note = resolution_input(reason, note)
        return _in_batches(request_ids, lambda rid: self.resolve(rid, reason, note, actor), on_batch)

    def cancel(self, request_id: str, actor: Actor) -> ActionResult:
        """Cancel one PENDING request (the same conditional write as ``DELETE /requests/{id}``).

        The processor's claim is conditional on PENDING as well, so a request is either cancelled before
        any attempt claims it, or it is claimed and this changes nothing (NOT_PENDING).
        """
        require_operator(actor, "cancel requests")

        def update(current: dict[str, Any], now: int) -> dict[str, Any]:
            return _status_change(
                current,
                now,
                # Never started: a PENDING request that already ran (a transient failure handed back, a
                # redrive) has completed steps that a cancel would leave half done.
                condition="#s = :pending AND (attribute_not_exists(#a) OR #a = :zero)",
                to=Status.CANCELLED,
                sets={"#fin": ":now", "#ttl": ":ttl"},
                names={"#fin": attr.FINISHED_AT, "#ttl": attr.TTL, "#a": attr.ATTEMPTS},
                values={
                    ":pending": {"S": Status.PENDING.value},
                    ":zero": {"N": "0"},
                    ":ttl": self._closed_ttl(now),
                },
                trail_values=trail.entry_values(TrailAction.CANCEL, actor.name, now),
            )

        return self._update_current(request_id, Outcome.NOT_PENDING, update, Outcome.CANCELLED)

    def add_note(self, request_id: str, note: str, actor: Actor) -> ActionResult:
        """Add a short note (a ticket reference, a sentence) to the request's trail, in any state."""
        require_operator(actor, "add notes")
        text = note_text(note)
        if not text:
            raise ValueError("A note needs some text.")
        return self._append_trail(request_id, TrailAction.NOTE, text, actor)

    def _append_trail(self, request_id: str, action: TrailAction, text: str, actor: Actor) -> ActionResult:
        def update(current: dict[str, Any], now: int) -> dict[str, Any]:
            return {
                "ConditionExpression": "attribute_exists(#id) AND "
                "(attribute_not_exists(#trail) OR size(#trail) < :most)",
                "UpdateExpression": f"SET {trail.APPEND}",
                "ExpressionAttributeNames": {"#id": attr.ID, **trail.NAMES},
                "ExpressionAttributeValues": {
                    ":most": {"N": str(attr.MAX_TRAIL_ENTRIES)},
                    **trail.entry_values(action, actor.name, now, text),
                },
            }

        return self._update_current(request_id, Outcome.TRAIL_FULL, update, Outcome.NOTED)


def _status_detail(status: str) -> str:
    return f"status is {status}"


def note_text(note: str) -> str:
    """A note as stored (trimmed); ValueError, naming the limit, for one longer than MAX_NOTE_CHARS."""
    text = note.strip()
    if len(text) > attr.MAX_NOTE_CHARS:
        raise ValueError(f"A note holds at most {attr.MAX_NOTE_CHARS} characters (this has {len(text)}).")
    return text


def resolution_input(reason: str, note: str) -> tuple[ResolveReason, str]:
    """The reason (one of ResolveReason) and note of a resolution, or ValueError saying what is wrong."""
    try:
        chosen = ResolveReason(reason)
    except ValueError:
        allowed = ", ".join(repr(r.value) for r in ResolveReason)
        raise ValueError(f"Unknown reason {reason!r}: choose one of {allowed}.") from None
    text = note_text(note)
    if chosen is ResolveReason.OTHER and not text:
        raise ValueError(f"Reason {ResolveReason.OTHER.value!r} needs a note saying why.")
    return chosen, text


def _joined(reason: str, note: str) -> str:
    return f"{reason}: {note}" if note else reason


def _in_batches(
    request_ids: Iterable[str],
    act: Callable[[str], ActionResult],
    on_batch: Callable[[list[ActionResult]], None] | None,
) -> list[ActionResult]:
    """``act`` on each request once (order kept) in bounded batches: a group of thousands must not flood
    the table or the trigger at once, and each request gets its own outcome."""
    ids = list(dict.fromkeys(request_ids))
    results: list[ActionResult] = []
    with ThreadPoolExecutor(max_workers=REDRIVE_CONCURRENCY) as pool:
        for start in range(0, len(ids), REDRIVE_BATCH_SIZE):
            done = list(pool.map(act, ids[start : start + REDRIVE_BATCH_SIZE]))
            results.extend(done)
            if on_batch is not None:
                on_batch(done)
    return results
