"""The business logic: a chain of named steps. Replace the demo steps below with your own.

Each step receives a :class:`StepContext` and returns a small dict that is merged into the request's result
summary (strings, or values shown as JSON; bounded by item.MAX_RESULT_*). A step raises
:class:`~streamdesk_processor.errors.BusinessError` for a permanent failure and
:class:`~streamdesk_processor.errors.TransientError` for one worth retrying.

The processor records every completed step on the item, so a retry or a redrive resumes with the first step
not yet completed: a step runs to completion at most once per request, unless the function dies between the
step's work and its record (at-least-once, like the stream). Make steps idempotent where that matters, for
example by keying external calls on ``ctx.request_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from streamdesk_processor.errors import BusinessError


@dataclass(frozen=True)
class StepContext:
    """What a step knows about the request it works on."""

    request_id: str
    request: Mapping[str, Any]  # the request body, parsed (always a JSON object)
    attempt: int  # 1 on the first processing attempt, counting retries and redrives
    step: str  # this step's name
    number: int  # this step's 1-based position in the chain


StepFunction = Callable[[StepContext], Mapping[str, Any] | None]


EstimateFunction = Callable[[StepContext], float]


@dataclass(frozen=True)
class Step:
    """A named step. ``long`` (always) or ``estimate_ms`` (a cheap guess from the request, in ms, at or
    above the deployment's SlowWorkThresholdMs) makes it a long step: the stream processor hands the
    request to the slow lane before it instead of running it (docs/slow-lane.md)."""

    name: str
    run: StepFunction
    long: bool = False
    estimate_ms: EstimateFunction | None = None


# ------------------------------------------------------------------------------ demo business logic
def validate(ctx: StepContext) -> dict[str, Any]:
    """Reject what can never succeed: an ``amount`` that is not a positive number."""
    amount = _amount(ctx.request)
    if amount is not None and amount <= 0:
        raise BusinessError("amount must be a positive number")
    return {"validated": "true"}


def reserve(ctx: StepContext) -> dict[str, Any]:
    """Pretend to reserve stock; the reference is derived from the request id, so a replay is harmless."""
    return {"reservation": f"res-{ctx.request_id[-12:]}"}


def charge(ctx: StepContext) -> dict[str, Any]:
    amount = _amount(ctx.request)
    return {"charged": str(amount if amount is not None else 0)}


def notify(ctx: StepContext) -> dict[str, Any]:
    return {"notified": "true"}


def _amount(request: Mapping[str, Any]) -> Decimal | None:
    raw = request.get("amount")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise BusinessError("amount must be a positive number")
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        raise BusinessError("amount must be a positive number") from None
    if not amount.is_finite():
        raise BusinessError("amount must be a positive number")
    return amount


# The chain, in order: edit this tuple to change what a request does. Names are recorded on the item
# (steps.<name>), so renaming a step makes requests in flight run it again.
STEPS: tuple[Step, ...] = (
    Step("validate", validate),
    Step("reserve", reserve),
    Step("charge", charge),
    Step("notify", notify),
)
