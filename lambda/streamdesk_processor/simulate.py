"""The optional ``simulate`` object of a request, which lets demos and tests drive every path.

``{"simulate": {"fail": "card declined", "failAtStep": 2, "failTimes": 1, "transient": false,
"delayMs": 150}}``:

* ``fail``: the error message; without it nothing fails.
* ``failAtStep``: which step fails, 1-based (default 1; past the last step means the last step).
* ``failTimes``: fail only while the attempt number is at most this (default: every attempt).
* ``transient``: raise :class:`TransientError` (retried automatically) instead of :class:`BusinessError`.
* ``delayMs``: work time per attempt (at most ``MAX_DELAY_MS``), spread over the steps this attempt runs
  up to the failing one, so that all of it is spent before a simulated failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streamdesk_processor.errors import BusinessError, InvalidRequestError, TransientError

SIMULATE = "simulate"
MAX_DELAY_MS = 10_000


@dataclass(frozen=True)
class Simulation:
    """What a request asks the processor to pretend (nothing, by default)."""

    fail: str | None = None
    fail_at_step: int = 1
    fail_times: int | None = None
    transient: bool = False
    delay_ms: float = 0.0

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> Simulation:
        """The request's ``simulate`` object; :class:`InvalidRequestError` if it is malformed."""
        spec = request.get(SIMULATE)
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise InvalidRequestError(f"'{SIMULATE}' must be a JSON object")
        fail = spec.get("fail")
        if fail is not None and not isinstance(fail, str):
            raise InvalidRequestError(f"'{SIMULATE}.fail' must be a string (the error message)")
        transient = spec.get("transient", False)
        if not isinstance(transient, bool):
            raise InvalidRequestError(f"'{SIMULATE}.transient' must be true or false")
        delay = spec.get("delayMs", 0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise InvalidRequestError(f"'{SIMULATE}.delayMs' must be a number of milliseconds, 0 or more")
        return cls(
            fail=fail,
            fail_at_step=_whole(spec, "failAtStep", minimum=1) or 1,
            fail_times=_whole(spec, "failTimes", minimum=0),
            transient=transient,
            delay_ms=min(float(delay), MAX_DELAY_MS),
        )

    def fails_on(self, attempt: int) -> bool:
        return self.fail is not None and (self.fail_times is None or attempt <= self.fail_times)

    def before_step(
        self,
        *,
        number: int,
        first_number: int,
        total: int,
        attempt: int,
        sleep: Callable[[float], None],
    ) -> None:
        """Spend this step's share of the delay, then raise if this is the step meant to fail.

        ``number`` is the step's 1-based position, ``first_number`` the position of the first step this
        attempt runs (earlier ones completed before), ``total`` how many steps there are.
        """
        failing_step = min(self.fail_at_step, total) if self.fails_on(attempt) else None
        last = failing_step if failing_step is not None and failing_step >= first_number else total
        if self.delay_ms and number <= last:
            sleep(self.delay_ms / 1000 / max(1, last - first_number + 1))
        if number == failing_step:
            message = self.fail or ""
            raise TransientError(message) if self.transient else BusinessError(message)


def _whole(spec: Mapping[str, Any], name: str, *, minimum: int) -> int | None:
    """The whole number ``spec[name]``, None if absent; :class:`InvalidRequestError` if malformed."""
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequestError(f"'{SIMULATE}.{name}' must be a whole number, {minimum} or more")
    return value
