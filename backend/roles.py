"""Who may do what: viewers see everything and change nothing; operators may also retry and submit.

The dashboard decides who is signed in (``backend/dashboard/sign_in.py``); every action in the backend
checks the actor it is given, so a viewer's change is refused even if a page asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


class PermissionDenied(PermissionError):
    """An actor tried a change its role does not allow."""


@dataclass(frozen=True)
class Actor:
    """Someone acting through the dashboard or the command line; ``name`` is recorded on what they change."""

    name: str
    role: Role

    @property
    def may_change(self) -> bool:
        return self.role is Role.OPERATOR


def require_operator(actor: Actor, action: str) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` is an operator."""
    if not actor.may_change:
        raise PermissionDenied(f"{actor.name} is a {actor.role.value} and may not {action}; ask an operator.")
