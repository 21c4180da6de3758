"""Failure grouping: one cause, one group, whatever ids, numbers and timestamps the message carries."""

from __future__ import annotations

from backend.computed.failures import group_failures, group_key, normalise_message
from backend.store.models import RequestSummary


def summary(
    request_id: str, error_type: str | None, message: str | None, finished: int, step: str = "charge"
):
    return RequestSummary(
        id=request_id, status="FAILED", created_at=finished - 100, started_at=finished - 50,
        finished_at=finished, updated_at=finished, attempts=1, ttl=None, error_type=error_type,
        error_message=message, error_step=step, redriven_at=None,
    )  # fmt: skip


def test_variable_parts_are_folded() -> None:
    a = normalise_message("card declined for order 4711 at 2026-11-27T07:14:37Z (ref 0x1F3A)")
    b = normalise_message("card declined for order 815 at 2026-11-28T10:00:01Z (ref 0xFFFF)")
    assert a == b == "card declined for order <n> at <time> (ref <hex>)"
    assert normalise_message("request 3f2b9c1e-0d4a-4f7e-9a51-6b2c8d9e0f11 timed out") == (
        "request <uuid> timed out"
    )
    assert normalise_message("user 'alice' not found") == normalise_message("user 'bob' not found")


def test_different_causes_stay_apart() -> None:
    assert normalise_message("card declined") != normalise_message("gateway timeout")
    assert group_key("BusinessError", "card declined") != group_key("TransientError", "card declined")
    assert normalise_message("error in step2") == "error in step2"  # digits inside words are not ids


def test_empty_message() -> None:
    assert normalise_message(None) == "(no message)"


def test_groups_count_first_last_steps_and_samples() -> None:
    items = [
        summary("a", "BusinessError", "card declined for order 1", 1_000, "charge"),
        summary("b", "BusinessError", "card declined for order 2", 3_000, "charge"),
        summary("c", "BusinessError", "card declined for order 3", 2_000, "reserve"),
        summary("d", "TransientError", "gateway timeout after 30 s", 5_000),
        summary("e", None, None, 4_000),
    ]
    groups = group_failures(items)
    assert [g.count for g in groups] == [3, 1, 1]
    top = groups[0]
    assert top.error_type == "BusinessError"
    assert top.pattern == "card declined for order <n>"
    assert (top.first_seen, top.last_seen) == (1_000, 3_000)
    assert top.steps == {"charge": 2, "reserve": 1}
    assert top.request_ids == ["b", "c", "a"]  # newest first
    assert top.samples(2) == ["b", "c"]
    assert groups[1].error_type == "TransientError"  # same size: most recent first
    assert groups[2].error_type == "(no error recorded)"
    assert top.key == group_key("BusinessError", "card declined for order 99")
