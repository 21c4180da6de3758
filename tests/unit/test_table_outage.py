"""The trigger's outage guard on its own: waiting without counting, parking, handing back."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from backend.local import table_outage
from backend.local.table_outage import OutageGuard, OutageStopped


class Table:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.probes = 0

    def __call__(self) -> bool:
        self.probes += 1
        answer = self.answers.pop(0) if self.answers else True
        if not answer:
            raise ConnectionError("refused")
        return True


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_outage, "FIRST_WAIT_SECONDS", 0.01)
    monkeypatch.setattr(table_outage, "HAND_BACK_EVERY_SECONDS", 0.0)


def test_a_reachable_table_means_the_failure_was_the_requests(tmp_path: Path) -> None:
    guard = OutageGuard(Table([True]), tmp_path / "parked.jsonl")
    assert guard.waited_out() is False
    assert guard.outages == 0


def test_an_unreachable_table_is_waited_out(tmp_path: Path) -> None:
    table = Table([False, False, False, True])
    guard = OutageGuard(table, tmp_path / "parked.jsonl")
    before = time.time()
    assert guard.waited_out() is True
    assert table.probes == 4 and guard.outages == 1
    assert guard.stats()["table_unreachable_since"] is None
    assert guard.lived_through_outage(before - 1)
    assert not guard.lived_through_outage(time.time() + 1)


def test_stopping_while_waiting_stops(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    guard = OutageGuard(Table([False] * 100), tmp_path / "parked.jsonl", stop)
    with pytest.raises(OutageStopped):
        guard.waited_out()


def test_parked_batches_are_handed_back_once_the_table_answers(tmp_path: Path) -> None:
    table = Table([])
    guard = OutageGuard(table, tmp_path / "parked.jsonl")
    first: list[dict[str, Any]] = [{"eventID": "a"}]
    second: list[dict[str, Any]] = [{"eventID": "b"}, {"eventID": "c"}]
    guard.park(first, "RecordAgeExceeded")
    guard.park(second, "RecordAgeExceeded")
    assert guard.stats()["parked_by_outage"] == 3

    table.answers = [False]  # still down: nothing is delivered
    delivered: list[list[dict[str, Any]]] = []
    assert guard.hand_back(lambda records: delivered.append(records) or True) == 0
    assert delivered == []

    # The first batch fails again (stays parked), the second finishes.
    assert guard.hand_back(lambda records: records is second or records == second) == 1
    assert [b["Records"] for b in guard.parked()] == [first]
    assert guard.hand_back(lambda records: True) == 1
    assert guard.parked() == [] and guard.handed_back == 2


def test_the_wait_reports_itself_after_every_probe(tmp_path: Path) -> None:
    """The trigger writes its state from ``on_wait``: a trigger waiting for the table stays alive on
    the health page, with the time the outage began."""
    guard = OutageGuard(Table([False, False, False, True]), tmp_path / "parked.jsonl")
    seen: list[Any] = []
    assert guard.waited_out(on_wait=lambda: seen.append(guard.stats()["table_unreachable_since"])) is True
    assert len(seen) == 2  # the second and third probes failed while waiting
    assert all(isinstance(since, int) for since in seen)
    assert guard.stats()["table_unreachable_since"] is None


def test_a_batch_parked_during_a_hand_back_is_kept(tmp_path: Path) -> None:
    """Delivery runs outside the lock: what a lane parks meanwhile survives the rewrite."""
    guard = OutageGuard(Table([]), tmp_path / "parked.jsonl")
    guard.park([{"eventID": "first"}], "RetryAttemptsExhausted")

    def deliver(records: list[dict[str, Any]]) -> bool:
        guard.park([{"eventID": "meanwhile"}], "RecordAgeExceeded")  # a lane giving up during delivery
        return True

    assert guard.hand_back(deliver) == 1
    assert [b["Records"] for b in guard.parked()] == [[{"eventID": "meanwhile"}]]
