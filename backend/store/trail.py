"""The trail on a request: every action by a person (retry, resolve, cancel, reconcile, note, resubmit),
appended to the item in the same conditional update as the change it records, so the two never disagree.

The names are the item's (:mod:`streamdesk_processor.item`); the API's cancel (``DELETE /requests/{id}``)
writes the same entry shape from its VTL in ``infra/template.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamdesk_processor import item as attr
from streamdesk_processor.item import TrailAction

# Placeholders used in every update that appends to the trail (unique among the update's own).
APPEND = "#trail = list_append(if_not_exists(#trail, :noTrail), :trailEntry)"
NAMES: dict[str, str] = {"#trail": attr.TRAIL}


def entry_values(action: TrailAction, by: str, at_ms: int, text: str = "") -> dict[str, Any]:
    """The ExpressionAttributeValues that :data:`APPEND` needs for one entry."""
    entry = {
        attr.TRAIL_AT: {"N": str(at_ms)},
        attr.TRAIL_BY: {"S": by},
        attr.TRAIL_ACTION: {"S": action.value},
        attr.TRAIL_TEXT: {"S": text[: attr.MAX_NOTE_CHARS]},
    }
    return {":noTrail": {"L": []}, ":trailEntry": {"L": [{"M": entry}]}}


@dataclass(frozen=True)
class TrailEntry:
    """One action on a request, as the detail's timeline shows it."""

    at: int | None  # epoch ms
    by: str
    action: str
    text: str

    @classmethod
    def from_plain(cls, raw: Any) -> TrailEntry | None:
        """An entry from the item's plain-Python attributes; None for something that is not one."""
        if not isinstance(raw, dict):
            return None
        at = raw.get(attr.TRAIL_AT)
        return cls(
            at=int(at) if isinstance(at, int | float) else None,
            by=str(raw.get(attr.TRAIL_BY, "")),
            action=str(raw.get(attr.TRAIL_ACTION, "")),
            text=str(raw.get(attr.TRAIL_TEXT, "")),
        )


def trail_of(attributes: dict[str, Any]) -> list[TrailEntry]:
    """The trail of an item given as plain Python (``RequestDetail.attributes``), oldest first."""
    raw = attributes.get(attr.TRAIL)
    if not isinstance(raw, list):
        return []
    entries = [TrailEntry.from_plain(value) for value in raw]
    return [entry for entry in entries if entry is not None]
