"""DynamoDB expression building: placeholders for names and values, and the list's projection and filter."""

from __future__ import annotations

from typing import Any

from streamdesk_processor import item

from backend.store.models import UNKNOWN_STATE


class Expression:
    """Collects ExpressionAttributeNames/Values so that only the names an expression uses are sent."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        for key, value in self.names.items():
            if value == attribute:
                return key
        self.names[placeholder] = attribute
        return placeholder

    def value(self, typed: dict[str, Any]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = typed
        return placeholder

    def path(self, *parts: str) -> str:
        return ".".join(self.name(part) for part in parts)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = self.names
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out


def summary_projection(expr: Expression) -> str:
    """What a list reads: the summary attributes, and of the error only type, message and step (the
    traceback can be kilobytes)."""
    plain_names = [
        item.ID,
        item.STATUS,
        item.CREATED_AT,
        item.STARTED_AT,
        item.FINISHED_AT,
        item.UPDATED_AT,
        item.ATTEMPTS,
        item.TTL,
        item.REDRIVEN_AT,
    ]
    paths = [expr.name(n) for n in plain_names]
    paths += [expr.path(item.ERROR, sub) for sub in (item.ERROR_TYPE, item.ERROR_MESSAGE, item.ERROR_STEP)]
    return ", ".join(paths)


def status_filter(expr: Expression, states: frozenset[str]) -> str | None:
    """A FilterExpression for ``states`` (None = every state)."""
    if not states:
        return None
    status = expr.name(item.STATUS)
    parts = []
    known = sorted(s for s in states if s != UNKNOWN_STATE)
    if known:
        parts.append(f"{status} IN ({', '.join(expr.value({'S': s}) for s in known)})")
    if UNKNOWN_STATE in states:
        every = ", ".join(expr.value({"S": s}) for s in sorted(item.Status))
        parts.append(f"(attribute_not_exists({status}) OR NOT ({status} IN ({every})))")
    return " OR ".join(parts)
