"""The demo's ``simulate`` object: when it fails, how, and where the delay is spent."""

from __future__ import annotations

from typing import Any

import pytest
from streamdesk_processor.errors import BusinessError, InvalidRequestError, TransientError
from streamdesk_processor.simulate import MAX_DELAY_MS, Simulation


def run_attempt(
    sim: Simulation, *, attempt: int, first: int = 1, total: int = 4
) -> tuple[list[float], int | None]:
    """Run the simulation over one attempt; returns the sleeps and the step that raised (if any)."""
    sleeps: list[float] = []
    for number in range(first, total + 1):
        try:
            sim.before_step(
                number=number, first_number=first, total=total, attempt=attempt, sleep=sleeps.append
            )
        except (BusinessError, TransientError):
            return sleeps, number
    return sleeps, None


def test_no_simulate_does_nothing() -> None:
    assert run_attempt(Simulation.from_request({"amount": 3}), attempt=1) == ([], None)


def test_fail_at_step_with_fail_times_fails_only_the_first_attempts() -> None:
    sim = Simulation.from_request({"simulate": {"fail": "card declined", "failAtStep": 2, "failTimes": 1}})
    with pytest.raises(BusinessError, match="card declined"):
        sim.before_step(number=2, first_number=1, total=4, attempt=1, sleep=lambda _: None)
    assert run_attempt(sim, attempt=1)[1] == 2
    assert run_attempt(sim, attempt=2)[1] is None


def test_without_fail_times_every_attempt_fails() -> None:
    sim = Simulation.from_request({"simulate": {"fail": "no"}})
    assert [run_attempt(sim, attempt=n)[1] for n in (1, 2, 9)] == [1, 1, 1]


def test_transient_raises_transient_error() -> None:
    sim = Simulation.from_request(
        {"simulate": {"fail": "gateway timeout", "transient": True, "failTimes": 1}}
    )
    with pytest.raises(TransientError, match="gateway timeout"):
        sim.before_step(number=1, first_number=1, total=4, attempt=1, sleep=lambda _: None)


def test_fail_at_step_past_the_end_fails_the_last_step() -> None:
    sim = Simulation.from_request({"simulate": {"fail": "x", "failAtStep": 99}})
    assert run_attempt(sim, attempt=1)[1] == 4


def test_delay_is_spent_before_the_failing_step() -> None:
    sim = Simulation.from_request(
        {"simulate": {"fail": "x", "failAtStep": 2, "failTimes": 1, "delayMs": 150}}
    )
    sleeps, failed = run_attempt(sim, attempt=1)
    assert failed == 2
    assert sum(sleeps) == pytest.approx(0.150)


def test_delay_is_spread_over_the_steps_this_attempt_runs() -> None:
    sim = Simulation.from_request({"simulate": {"delayMs": 300}})
    sleeps, failed = run_attempt(sim, attempt=1, first=2, total=4)  # resumed after step 1
    assert failed is None
    assert sleeps == pytest.approx([0.1, 0.1, 0.1])


def test_delay_is_capped() -> None:
    sim = Simulation.from_request({"simulate": {"delayMs": 10 * MAX_DELAY_MS}})
    assert sum(run_attempt(sim, attempt=1)[0]) == pytest.approx(MAX_DELAY_MS / 1000)


@pytest.mark.parametrize(
    "simulate",
    [
        "fail please",
        {"fail": 3},
        {"fail": "x", "failAtStep": 0},
        {"fail": "x", "failAtStep": "2"},
        {"fail": "x", "failAtStep": True},
        {"fail": "x", "failTimes": -1},
        {"fail": "x", "transient": "yes"},
        {"delayMs": -5},
        {"delayMs": "slow"},
    ],
)
def test_malformed_simulate_is_an_invalid_request(simulate: Any) -> None:
    with pytest.raises(InvalidRequestError):
        Simulation.from_request({"simulate": simulate})
