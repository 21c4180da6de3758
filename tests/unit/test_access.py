"""The sign-in rules (backend/access.py): who an OpenID Connect account is, password matching, and the
limit on password guessing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from backend.access import AttemptLimiter, email_is_verified, oidc_role, role_for_password
from backend.roles import Role

OPERATORS = ("Ops@Example.com",)


@pytest.mark.parametrize(
    ("claims", "verified"),
    [
        ({"email_verified": True}, True),
        ({"email_verified": "true"}, True),
        ({"email_verified": "TRUE "}, True),
        ({"email_verified": False}, False),
        ({"email_verified": "false"}, False),
        ({"email_verified": 1}, False),
        ({}, False),
    ],
)
def test_only_a_true_email_verified_claim_counts(claims: dict[str, Any], verified: bool) -> None:
    assert email_is_verified(claims) is verified


@pytest.mark.parametrize(
    ("claims", "viewers", "role"),
    [
        ({"email": "ops@example.com", "email_verified": True}, (), Role.OPERATOR),
        ({"email": "OPS@example.com", "email_verified": "true"}, (), Role.OPERATOR),
        ({"email": "ops@example.com"}, ("*",), None),  # not verified: not even a viewer
        ({"email": "ann@example.com", "email_verified": True}, (), None),  # nobody listed her
        ({"email": "ann@example.com", "email_verified": True}, ("ann@example.com",), Role.VIEWER),
        ({"email": "ann@example.com", "email_verified": True}, ("@example.com",), Role.VIEWER),
        ({"email": "ann@evil-example.com", "email_verified": True}, ("@example.com",), None),
        ({"email": "anyone@anywhere.org", "email_verified": True}, ("*",), Role.VIEWER),
        ({"name": "ops@example.com", "email_verified": True}, ("*",), None),  # a display name is no e-mail
    ],
)
def test_oidc_roles(claims: dict[str, Any], viewers: tuple[str, ...], role: Role | None) -> None:
    assert oidc_role(claims, OPERATORS, viewers) is role


def test_a_wildcard_never_makes_an_operator() -> None:
    claims = {"email": "anyone@anywhere.org", "email_verified": True}
    assert oidc_role(claims, ("*",), ()) is None


def test_password_matching() -> None:
    secrets = {Role.OPERATOR: "act", Role.VIEWER: "look"}
    assert role_for_password("act", secrets) is Role.OPERATOR
    assert role_for_password("look", secrets) is Role.VIEWER
    assert role_for_password("guess", secrets) is None
    assert role_for_password("", secrets) is None
    assert role_for_password("", {Role.OPERATOR: "", Role.VIEWER: None}) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_guessing_is_limited_per_client_and_the_limit_passes() -> None:
    clock = FakeClock()
    limiter = AttemptLimiter(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert limiter.try_acquire("1.2.3.4") == 0  # taken, and counted until it succeeds
        clock.now += 1
    assert limiter.try_acquire("1.2.3.4") == pytest.approx(57)  # the first one leaves at 1060
    assert limiter.try_acquire("5.6.7.8") == 0  # another client has its own budget
    clock.now = 1060.5
    assert limiter.try_acquire("1.2.3.4") == 0
    limiter.succeeded("1.2.3.4")
    assert limiter.try_acquire("1.2.3.4") == 0


def test_attempts_are_taken_atomically_so_parallel_sessions_share_one_budget() -> None:
    clock = FakeClock()
    limiter = AttemptLimiter(limit=3, window_s=60, clock=clock)
    barrier = threading.Barrier(20)

    def attempt() -> float:
        barrier.wait()
        return limiter.try_acquire("1.2.3.4")

    with ThreadPoolExecutor(20) as pool:
        waits = list(pool.map(lambda _: attempt(), range(20)))
    assert sum(1 for wait in waits if wait == 0) == 3  # exactly the budget got through
    limiter.succeeded("1.2.3.4")  # one of them had the right password: its budget is back
    assert limiter.try_acquire("1.2.3.4") == 0
