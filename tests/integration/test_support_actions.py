"""Resolve, reopen, cancel and notes against DynamoDB Local: conditional, recorded on the trail in the same
write, with a TTL for closed requests, refused for viewers, and bad input refused before any write."""

from __future__ import annotations

import time
from typing import Any

import pytest
from streamdesk_processor import item as attr
from streamdesk_processor.item import ResolveReason, Status

from backend.operations import Pipeline
from backend.roles import Actor, PermissionDenied, Role
from backend.settings import Settings
from backend.store.actions import REDRIVE_BATCH_SIZE, Outcome, RequestActions
from backend.store.models import RequestFilter
from backend.store.resubmit import Linked, link_resubmission
from tests.integration.test_request_actions import make_failed
from tests.processor_events import put_pending_item, read_item

OPERATOR = Actor("ops@example.com", Role.OPERATOR)
VIEWER = Actor("viewer@example.com", Role.VIEWER)
DAYS = 11


def actions(ddb: Any, table: str) -> RequestActions:
    return RequestActions(ddb, table, closed_retention_days=DAYS)


def trail(stored: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e[attr.TRAIL_ACTION], e[attr.TRAIL_BY], e[attr.TRAIL_TEXT]) for e in stored.get(attr.TRAIL, [])]


def test_resolve_closes_a_failure_with_who_when_why_and_a_ttl(ddb: Any, table_name: str) -> None:
    request_id = make_failed(ddb, table_name)
    before = time.time()
    result = actions(ddb, table_name).resolve(request_id, ResolveReason.DUPLICATE, " TICKET-12 ", OPERATOR)
    assert result.outcome is Outcome.RESOLVED
    stored = read_item(ddb, table_name, request_id)
    shard = stored[attr.TIME_BUCKET].split(":")[1]
    assert stored[attr.STATUS] == Status.RESOLVED
    assert stored[attr.STATE_BUCKET] == f"RESOLVED:{shard}"  # out of the open failures' partitions
    assert stored[attr.RESOLUTION][attr.RESOLUTION_REASON] == ResolveReason.DUPLICATE.value
    assert stored[attr.RESOLUTION][attr.RESOLUTION_NOTE] == "TICKET-12"
    assert stored[attr.RESOLUTION][attr.RESOLUTION_BY] == OPERATOR.name
    assert stored[attr.RESOLUTION][attr.RESOLUTION_AT] == stored[attr.UPDATED_AT]
    assert before + DAYS * 86_400 - 2 <= stored[attr.TTL] <= time.time() + DAYS * 86_400 + 2
    assert stored[attr.ERROR][attr.ERROR_MESSAGE] == "card declined"  # kept: still shown and exported
    assert trail(stored) == [("resolve", OPERATOR.name, "duplicate: TICKET-12")]


def test_resolve_changes_nothing_unless_failed(ddb: Any, table_name: str) -> None:
    pending = put_pending_item(ddb, table_name, {"order": 1})
    before = read_item(ddb, table_name, pending)
    result = actions(ddb, table_name).resolve(pending, ResolveReason.DUPLICATE, "", OPERATOR)
    assert (result.outcome, result.detail) == (Outcome.NOT_FAILED, "status is PENDING")
    assert read_item(ddb, table_name, pending) == before
    missing = actions(ddb, table_name).resolve("no-such-id", ResolveReason.DUPLICATE, "", OPERATOR)
    assert missing.outcome is Outcome.NOT_FOUND


@pytest.mark.parametrize(
    ("reason", "note", "message"),
    [
        ("because", "", "Unknown reason 'because'"),
        (ResolveReason.OTHER, "  ", "needs a note"),
        (ResolveReason.DUPLICATE, "x" * (attr.MAX_NOTE_CHARS + 1), "at most 500 characters"),
    ],
)
def test_bad_resolution_input_is_refused_before_any_write(
    ddb: Any, table_name: str, reason: str, note: str, message: str
) -> None:
    request_id = make_failed(ddb, table_name)
    before = read_item(ddb, table_name, request_id)
    with pytest.raises(ValueError, match=message):
        actions(ddb, table_name).resolve(request_id, reason, note, OPERATOR)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        actions(ddb, table_name).resolve_many([request_id], reason, note, OPERATOR)  # type: ignore[arg-type]
    assert read_item(ddb, table_name, request_id) == before


def test_resolve_many_in_batches_with_one_result_each(ddb: Any, table_name: str) -> None:
    failed = [make_failed(ddb, table_name) for _ in range(REDRIVE_BATCH_SIZE + 2)]
    pending = put_pending_item(ddb, table_name, {"order": 3})
    batches: list[int] = []
    results = actions(ddb, table_name).resolve_many(
        [*failed, pending, failed[0]],
        ResolveReason.FIXED_BY_HAND,
        "",
        OPERATOR,
        on_batch=lambda b: batches.append(len(b)),
    )
    assert [r.outcome for r in results] == [Outcome.RESOLVED] * len(failed) + [Outcome.NOT_FAILED]
    assert batches == [REDRIVE_BATCH_SIZE, 3]
    assert all(read_item(ddb, table_name, i)[attr.STATUS] == Status.RESOLVED for i in failed)


def test_an_explicit_retry_of_a_resolved_failure_reopens_then_redrives_it(ddb: Any, table_name: str) -> None:
    request_id = make_failed(ddb, table_name)
    acts = actions(ddb, table_name)
    acts.resolve(request_id, ResolveReason.WONT_FIX, "", OPERATOR)
    result = acts.redrive(request_id, Actor("lead@example.com", Role.OPERATOR))
    assert result.outcome is Outcome.REDRIVEN
    stored = read_item(ddb, table_name, request_id)
    assert stored[attr.STATUS] == Status.PENDING
    assert attr.TTL not in stored and attr.RESOLUTION not in stored  # open again: never expires mid-flight
    assert [a for a, _, _ in trail(stored)] == ["resolve", "reopen", "retry"]
    assert trail(stored)[2][1] == "lead@example.com"


def test_cancel_a_pending_request_records_who_and_gets_a_ttl(ddb: Any, table_name: str) -> None:
    request_id = put_pending_item(ddb, table_name, {"order": 1})
    result = actions(ddb, table_name).cancel(request_id, OPERATOR)
    assert result.outcome is Outcome.CANCELLED
    stored = read_item(ddb, table_name, request_id)
    shard = stored[attr.TIME_BUCKET].split(":")[1]
    assert (stored[attr.STATUS], stored[attr.STATE_BUCKET]) == (Status.CANCELLED, f"CANCELLED:{shard}")
    assert abs(int(stored[attr.TTL]) - (time.time() + DAYS * 86_400)) < 60
    assert trail(stored) == [("cancel", OPERATOR.name, "")]


@pytest.mark.parametrize("status", [Status.PROCESSING, Status.SUCCEEDED, Status.FAILED])
def test_cancel_refuses_what_is_not_pending(ddb: Any, table_name: str, status: Status) -> None:
    request_id = put_pending_item(ddb, table_name, {"order": 1})
    ddb.update_item(
        TableName=table_name,
        Key={attr.ID: {"S": request_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": attr.STATUS},
        ExpressionAttributeValues={":s": {"S": status.value}},
    )
    before = read_item(ddb, table_name, request_id)
    result = actions(ddb, table_name).cancel(request_id, OPERATOR)
    assert (result.outcome, result.detail) == (Outcome.NOT_PENDING, f"status is {status.value}")
    assert read_item(ddb, table_name, request_id) == before


def test_notes_go_on_the_trail_up_to_a_bound(
    ddb: Any, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = put_pending_item(ddb, table_name, {"order": 1})
    acts = actions(ddb, table_name)
    assert acts.add_note(request_id, "  see TICKET-7 ", OPERATOR).outcome is Outcome.NOTED
    assert trail(read_item(ddb, table_name, request_id)) == [("note", OPERATOR.name, "see TICKET-7")]
    with pytest.raises(ValueError, match="needs some text"):
        acts.add_note(request_id, "   ", OPERATOR)
    with pytest.raises(ValueError, match="at most"):
        acts.add_note(request_id, "x" * (attr.MAX_NOTE_CHARS + 1), OPERATOR)
    assert acts.add_note("no-such-id", "hello", OPERATOR).outcome is Outcome.NOT_FOUND

    monkeypatch.setattr(attr, "MAX_TRAIL_ENTRIES", 2)
    assert acts.add_note(request_id, "second", OPERATOR).outcome is Outcome.NOTED
    assert acts.add_note(request_id, "third", OPERATOR).outcome is Outcome.TRAIL_FULL
    assert len(trail(read_item(ddb, table_name, request_id))) == 2


def test_reconcile_and_retry_are_on_the_trail(ddb: Any, table_name: str) -> None:
    request_id = put_pending_item(ddb, table_name, {"order": 1})
    seen = read_item(ddb, table_name, request_id)[attr.UPDATED_AT]
    result = actions(ddb, table_name).hand_back_stuck(request_id, Status.PENDING, int(seen), "lost", OPERATOR)
    assert result.outcome is Outcome.REDRIVEN
    assert trail(read_item(ddb, table_name, request_id)) == [
        ("reconcile", OPERATOR.name, "lost"),
        ("retry", OPERATOR.name, ""),
    ]


def test_a_viewer_is_refused_every_support_action(ddb: Any, table_name: str) -> None:
    failed = make_failed(ddb, table_name)
    pending = put_pending_item(ddb, table_name, {"order": 1})
    before = (read_item(ddb, table_name, failed), read_item(ddb, table_name, pending))
    acts = actions(ddb, table_name)
    refused = [
        lambda: acts.resolve(failed, ResolveReason.DUPLICATE, "", VIEWER),
        lambda: acts.resolve_many([failed], ResolveReason.DUPLICATE, "", VIEWER),
        lambda: acts.reopen(failed, VIEWER),
        lambda: acts.cancel(pending, VIEWER),
        lambda: acts.add_note(pending, "hi", VIEWER),
    ]
    for attempt in refused:
        with pytest.raises(PermissionDenied, match="viewer"):
            attempt()
    assert (read_item(ddb, table_name, failed), read_item(ddb, table_name, pending)) == before


def test_a_resubmission_is_linked_both_ways_on_the_trail(ddb: Any, table_name: str) -> None:
    original = make_failed(ddb, table_name)
    copies = [put_pending_item(ddb, table_name, {"order": n}) for n in range(2)]
    for copy in copies:
        assert link_resubmission(ddb, table_name, original, copy, OPERATOR) == Linked(
            original=True, copy=True
        )
    stored = read_item(ddb, table_name, original)
    assert stored[attr.RESUBMITTED_AS] == set(copies)
    assert stored[attr.STATUS] == Status.FAILED  # a link changes no state
    assert trail(stored) == [("resubmit", OPERATOR.name, f"as {c}") for c in copies]
    copy = read_item(ddb, table_name, copies[0])
    assert copy[attr.RESUBMITTED_FROM] == original and copy[attr.STATUS] == Status.PENDING
    assert trail(copy) == [("resubmit", OPERATOR.name, f"from {original}")]

    # An original gone meanwhile (expired) is said, and nothing is created for it.
    assert link_resubmission(ddb, table_name, "gone", copies[1], OPERATOR) == Linked(
        original=False, copy=True
    )
    assert ddb.get_item(TableName=table_name, Key={attr.ID: {"S": "gone"}}).get("Item") is None
    with pytest.raises(ValueError, match="itself"):
        link_resubmission(ddb, table_name, original, original, OPERATOR)
    with pytest.raises(PermissionDenied, match="viewer"):
        link_resubmission(ddb, table_name, original, copies[0], VIEWER)


def test_closed_requests_are_still_found_listed_and_not_open(ddb: Any, settings: Settings) -> None:
    table = settings.table
    resolved, still_failed = make_failed(ddb, table), make_failed(ddb, table)
    cancelled = put_pending_item(ddb, table, {"order": 1})
    acts = actions(ddb, table)
    acts.resolve(resolved, ResolveReason.DUPLICATE, "", OPERATOR)
    acts.cancel(cancelled, OPERATOR)
    pipeline = Pipeline.connect(settings)
    assert pipeline.failed_ids() == [still_failed]  # the open failures
    assert [s.id for s in pipeline.resolved()] == [resolved]
    listed = pipeline.store.list_requests(RequestFilter(states=frozenset({"RESOLVED", "CANCELLED"})), 50)
    assert sorted(s.id for s in listed.items) == sorted([resolved, cancelled])
    found = pipeline.store.list_requests(RequestFilter(request_id=cancelled), 50)
    assert [s.status for s in found.items] == ["CANCELLED"]


def test_cancel_refuses_a_pending_request_that_already_started(ddb: Any, table_name: str) -> None:
    """PENDING again after an attempt (a transient failure handed back, a redrive) has completed steps:
    a cancel would leave them half done, so it is refused like a request in progress."""
    request_id = put_pending_item(ddb, table_name, {"order": 1})
    ddb.update_item(
        TableName=table_name,
        Key={attr.ID: {"S": request_id}},
        UpdateExpression="SET #a = :one",
        ExpressionAttributeNames={"#a": attr.ATTEMPTS},
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    result = actions(ddb, table_name).cancel(request_id, OPERATOR)
    assert (result.outcome, result.detail) == (Outcome.NOT_PENDING, f"status is {Status.PENDING.value}")
    stored = read_item(ddb, table_name, request_id)
    assert stored[attr.STATUS] == Status.PENDING and attr.TRAIL not in stored
