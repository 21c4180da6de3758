"""The data layer's models: the list's default range is one rule (the page and the export use it too), and
request details hand pages typed steps and errors rather than maps to parse."""

from __future__ import annotations

from dataclasses import replace

from streamdesk_processor.item import MS_PER_DAY, Status

from backend.api_client import PublicRequest
from backend.store.models import OPEN_STATES, RecordedError, RequestDetail, RequestFilter, RequestSummary

NOW = 1_700_000_000_000


def test_a_list_of_open_states_only_has_no_default_range() -> None:
    flt = RequestFilter(states=frozenset(OPEN_STATES))
    assert flt.list_range(NOW) is None
    assert flt.bounded(NOW) == flt


def test_any_other_list_reads_the_last_24_hours_unless_told_otherwise() -> None:
    assert RequestFilter().list_range(NOW) == (NOW - MS_PER_DAY, NOW)
    succeeded = RequestFilter(states=frozenset({Status.SUCCEEDED, Status.PENDING}))
    assert succeeded.bounded(NOW) == replace(succeeded, since_ms=NOW - MS_PER_DAY, until_ms=NOW)
    assert RequestFilter(until_ms=NOW - 5).list_range(NOW) == (NOW - 5 - MS_PER_DAY, NOW - 5)
    assert RequestFilter(since_ms=NOW - 60_000).list_range(NOW) == (NOW - 60_000, NOW)
    # Open states with a range given keep it.
    ranged = RequestFilter(states=frozenset({Status.FAILED}), since_ms=1, until_ms=2)
    assert ranged.bounded(NOW) == ranged


def _detail(steps: dict[str, dict[str, object]], error: dict[str, object] | None) -> RequestDetail:
    summary = RequestSummary("r1", "FAILED", NOW, NOW, NOW, NOW, 1, None, None, None, None, None)
    return RequestDetail(summary, "{}", steps, {}, error, None, {})


def test_completed_steps_come_typed_in_the_order_they_were_done() -> None:
    detail = _detail(
        {"ship": {"at": NOW + 20, "attempt": 2}, "odd": {"at": "later"}, "charge": {"at": NOW + 10}}, None
    )
    steps = detail.completed_steps
    assert [(s.name, s.at, s.attempt) for s in steps] == [
        ("charge", NOW + 10, None),
        ("ship", NOW + 20, 2),
        ("odd", None, None),  # an unreadable time goes last, as before
    ]


def test_a_recorded_error_keeps_what_was_recorded_and_the_traceback_apart() -> None:
    detail = _detail({}, {"type": "BusinessError", "message": "card declined", "traceback": "Traceback ..."})
    assert detail.failure == RecordedError(
        summary={"type": "BusinessError", "message": "card declined"}, traceback="Traceback ..."
    )
    assert detail.transient_failure is None
    assert _detail({}, None).failure is None
    assert _detail({}, {}).failure is None  # an empty map records nothing


def test_the_public_answer_of_the_api_comes_typed() -> None:
    fields = {
        "id": "r1",
        "status": "SUCCEEDED",
        "createdAt": NOW,
        "startedAt": NOW + 100,
        "finishedAt": NOW + 350,
        "attempts": 1,
        "result": {"receipt": "x"},
    }
    request = PublicRequest.of(fields)
    assert request.finished and request.queue_wait_ms == 100 and request.end_to_end_ms == 350
    assert request.result == {"receipt": "x"} and request.error is None
    pending = PublicRequest.of({"status": "PENDING", "createdAt": NOW, "attempts": "x"})
    assert not pending.finished and pending.queue_wait_ms is None and pending.attempts == 0


def test_only_a_pending_request_that_never_started_is_cancellable() -> None:
    """The dashboard offers "Cancel" exactly where the cancel write's condition would hold."""
    fresh = RequestSummary("r1", Status.PENDING, NOW, None, None, NOW, 0, None, None, None, None, None)
    assert fresh.cancellable
    assert not replace(fresh, attempts=1).cancellable  # pending again after an attempt: steps are done
    assert not replace(fresh, status=Status.PROCESSING, attempts=1).cancellable
    assert not replace(fresh, status=Status.FAILED).cancellable
