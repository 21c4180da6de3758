"""Which steps go to the slow lane, and the hand-off message and tokens (no I/O)."""

from __future__ import annotations

import pytest
from streamdesk_processor.config import ProcessorConfig
from streamdesk_processor.errors import ConfigError
from streamdesk_processor.simulate import Simulation
from streamdesk_processor.slow_lane import HandOff, delivery_token, handoff_token, is_long
from streamdesk_processor.steps import Step, StepContext

CTX = StepContext(request_id="r1", request={"size": 5000}, attempt=1, step="s", number=1)
PLAIN = Step("plain", lambda ctx: {})


def test_a_plain_step_of_a_plain_request_is_not_long() -> None:
    assert not is_long(PLAIN, CTX, Simulation(), 1000)


def test_a_step_declared_long_is_long_whatever_the_request() -> None:
    assert is_long(Step("export", lambda ctx: {}, long=True), CTX, Simulation(), 1000)


@pytest.mark.parametrize(("estimate", "expected"), [(999, False), (1000, True), (5000, True)])
def test_an_estimate_at_or_above_the_threshold_is_long(estimate: float, expected: bool) -> None:
    step = Step("sized", lambda ctx: {}, estimate_ms=lambda ctx: estimate)
    assert is_long(step, CTX, Simulation(), 1000) is expected


def test_the_estimate_reads_the_request() -> None:
    step = Step("sized", lambda ctx: {}, estimate_ms=lambda ctx: float(ctx.request["size"]))
    assert is_long(step, CTX, Simulation(), 1000)
    assert not is_long(step, CTX, Simulation(), 6000)


@pytest.mark.parametrize(("delay", "expected"), [(0, False), (999, False), (1000, True), (5000, True)])
def test_the_demo_logic_is_long_when_its_simulated_delay_reaches_the_threshold(
    delay: float, expected: bool
) -> None:
    assert is_long(PLAIN, CTX, Simulation(delay_ms=delay), 1000) is expected


def test_a_threshold_of_zero_hands_off_only_what_has_a_delay_or_is_declared() -> None:
    assert not is_long(PLAIN, CTX, Simulation(), 0)
    assert is_long(PLAIN, CTX, Simulation(delay_ms=1), 0)


def test_tokens_tie_a_delivery_to_its_hand_off_and_the_hand_off_to_its_record() -> None:
    token = handoff_token("event-1")
    assert token == "slow:event-1"
    assert delivery_token(token, 2, "ab").startswith(token + "/")
    assert not delivery_token(token, 1, "ab").startswith(handoff_token("event-10") + "/")


def test_the_message_round_trips_and_refuses_what_is_not_a_hand_off() -> None:
    handoff = HandOff("r1", handoff_token("e1"), "3", "charge")
    assert HandOff.from_body(handoff.body()) == handoff
    for body in ("[]", "{}", '{"requestId": "r1", "token": "e1", "shard": "0", "step": "x"}', "not json"):
        with pytest.raises(ValueError):
            HandOff.from_body(body)


def test_the_slow_lane_is_on_only_with_a_queue_and_its_settings_are_checked() -> None:
    assert not ProcessorConfig.from_env({"TABLE_NAME": "requests"}).hands_off
    config = ProcessorConfig.from_env(
        {"TABLE_NAME": "requests", "SLOW_WORK_QUEUE_URL": "http://q", "SLOW_WORK_THRESHOLD_MS": "250",
         "SLOW_WORK_MAX_RECEIVES": "4"}
    )  # fmt: skip
    assert (config.hands_off, config.slow_work_threshold_ms, config.slow_work_max_receives) == (True, 250, 4)
    with pytest.raises(ConfigError):
        ProcessorConfig.from_env({"TABLE_NAME": "requests", "SLOW_WORK_MAX_RECEIVES": "0"})
