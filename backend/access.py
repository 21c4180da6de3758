"""Who may sign in to the dashboard and as what: the rules, apart from the Streamlit forms that ask
(``backend/dashboard/sign_in.py``) so that the CLI, the tests and any other front end apply the same ones.

- OpenID Connect: only a *verified* e-mail counts, for either role. Operators are the e-mails listed in
  ``operators``; viewers are those listed in ``viewers`` (an e-mail, ``@example.com`` for a whole domain, or
  ``*`` for any verified account). Anyone else signed in is refused: with a public provider "signed in"
  means "anyone on the internet".
- Passwords: one per role, never empty, compared in constant time; failed attempts are slowed down and,
  past a limit in a window, refused for a while (per client address).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.roles import Role

ANY_VERIFIED_ACCOUNT = "*"


def email_is_verified(claims: Mapping[str, Any]) -> bool:
    """Whether the provider vouches for the e-mail: ``email_verified`` is true (a boolean, or the string
    ``"true"`` that some providers send). A missing claim is not a promise."""
    verified = claims.get("email_verified")
    if isinstance(verified, str):
        return verified.strip().lower() == "true"
    return verified is True


def _listed(email: str, entries: Iterable[str]) -> bool:
    for entry in entries:
        wanted = entry.strip().lower()
        if wanted in (ANY_VERIFIED_ACCOUNT, email):
            return True
        if wanted.startswith("@") and email.endswith(wanted):
            return True
    return False


def oidc_role(claims: Mapping[str, Any], operators: Iterable[str], viewers: Iterable[str]) -> Role | None:
    """The role of a signed-in OpenID Connect account, or None when it may not use the dashboard."""
    email = claims.get("email")
    if not isinstance(email, str) or not email or not email_is_verified(claims):
        return None
    email = email.strip().lower()
    if _listed(email, (o for o in operators if o.strip() != ANY_VERIFIED_ACCOUNT)):
        return Role.OPERATOR  # an operator is always named: "*" never makes one
    if _listed(email, viewers):
        return Role.VIEWER
    return None


def role_for_password(password: str, secrets: Mapping[Role, str | None]) -> Role | None:
    """The role whose password this is (constant-time comparisons), or None. An empty password never
    matches, whatever is configured."""
    if not password:
        return None
    given = password.encode()
    found: Role | None = None
    for role in (Role.OPERATOR, Role.VIEWER):
        secret = secrets.get(role)
        # Every configured secret is compared, so the time taken does not tell which one matched.
        if secret and hmac.compare_digest(given, secret.encode()) and found is None:
            found = role
    return found


@dataclass
class AttemptLimiter:
    """Slows down password guessing: at most ``limit`` failed attempts per client in ``window_s``
    seconds; past that, attempts are refused until the oldest failure leaves the window. Thread-safe
    (one instance serves every browser session of the process)."""

    limit: int = 5
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def try_acquire(self, client: str) -> float:
        """Take an attempt for ``client`` atomically: 0 and a provisional failure recorded (undone by
        :meth:`succeeded`), or the seconds to wait. Check and record in one step, so that many sessions
        at once cannot all pass the check before any of their failures is counted."""
        with self._lock:
            now = self.clock()
            failures = self._recent(client, now)
            if len(failures) >= self.limit:
                return max(0.0, failures[0] + self.window_s - now)
            failures.append(now)
            return 0.0

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def reset(self) -> None:
        """Forget every failure (tests; a server restart does the same)."""
        with self._lock:
            self._failures.clear()
