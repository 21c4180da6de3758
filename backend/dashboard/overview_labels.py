"""What each overview figure is called and means, in one place (the page lays them out).

The range's figures are counts of transitions in the range (docs/rollups.md gives the rule for each): a
request redriven and failed again counts twice as failed, one accepted yesterday and finished today counts
as succeeded today only. A transition the rollups learn later (a new ``Transition`` member) is shown with a
label made from its name until it gets one here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from streamdesk_rollups.schema import Transition

from backend.computed.overview import Overview
from backend.dashboard.formatting import fmt_duration


@dataclass(frozen=True)
class Figure:
    label: str
    value: int | str
    help: str


# Known transitions, in display order; the rest follow in Transition's order.
_TRANSITION_TEXTS: Final[dict[Transition, tuple[str, str]]] = {
    Transition.ACCEPTED: ("Accepted", "Requests the API accepted in the range (counted at createdAt)."),
    Transition.STARTED: (
        "Started",
        "Attempts the processor started in the range (a claim; a retry's new claim counts again).",
    ),
    Transition.SUCCEEDED: (
        "Succeeded",
        "Requests that finished successfully in the range (counted at finishedAt).",
    ),
    Transition.FAILED: (
        "Failed",
        "Times a request entered FAILED in the range (the processor, or a person marking a stuck request "
        "failed); a request redriven and failed again counts again.",
    ),
    Transition.RETRIED: (
        "Retried automatically",
        "Times the processor handed a transient failure back to PENDING in the range (a retry in the slow "
        "lane stays PROCESSING and counts as a new start instead).",
    ),
    Transition.REDRIVEN: ("Redriven", "Failed requests a person sent back to PENDING in the range."),
    Transition.EXPIRED: ("Expired", "Requests DynamoDB's TTL deleted in the range (counted when deleted)."),
    Transition.CANCELLED: ("Cancelled", "Pending requests withdrawn in the range."),
    Transition.RESOLVED: ("Resolved", "Failures closed by a person without a retry in the range."),
    Transition.REOPENED: (
        "Reopened",
        "Resolved failures a person opened again in the range (to retry them); not counted as new failures.",
    ),
}


def _transition_order() -> list[Transition]:
    known = list(_TRANSITION_TEXTS)
    return known + [t for t in Transition if t not in _TRANSITION_TEXTS]


def range_figures(overview: Overview) -> list[Figure]:
    """One figure per transition the rollups count, known ones first."""
    figures = []
    for transition in _transition_order():
        label, help_text = _TRANSITION_TEXTS.get(
            transition,
            (
                transition.value.replace("_", " ").capitalize(),
                f"Transitions '{transition.value}' in the range.",
            ),
        )
        figures.append(Figure(label, overview.counts.get(transition, 0), help_text))
    return figures


def now_figures(
    overview: Overview, stuck_after_ms: int, horizon_hours: float, retention_days: int
) -> list[Figure]:
    """The "right now" figures: every open request, whatever its age."""
    live = overview.live
    return [
        Figure(
            "Pending now",
            live.pending,
            "Requests waiting for the processor (exact count of the state index).",
        ),
        Figure(
            "Processing now",
            live.processing,
            "Requests the processor or the slow lane is working on, or that wait in the slow-work queue "
            "(exact count).",
        ),
        Figure(
            "Stuck now",
            live.stuck,
            f"Pending or processing for over {fmt_duration(stuck_after_ms)} (since creation, the last "
            "redrive or the current attempt's start).",
        ),
        Figure(
            "Failed (open)",
            overview.open_failures,
            "Failed requests waiting for a person (not redriven or resolved yet): the rollups' gauge, kept "
            "exactly by the rollups consumer, so it follows that consumer (the Health page says how far "
            "behind it is).",
        ),
        Figure(
            "Oldest pending",
            fmt_duration(live.oldest_pending_age_ms),
            "How long the longest-waiting pending request has waited (since creation or its last redrive).",
        ),
        Figure(
            f"Expiring ({horizon_hours:g} h)",
            overview.expiring.count,
            f"Succeeded requests TTL deletes within about {horizon_hours:g} h: those that finished "
            f"between {retention_days} days ago and {horizon_hours:g} h later (whole hours of the rollups, "
            "so up to an hour more that are due for deletion already).",
        ),
    ]


def kept_figures(overview: Overview, closed_days: int) -> list[Figure]:
    """Requests closed by a person that are still kept (the state index holds them until their TTL)."""
    live = overview.live
    return [
        Figure(
            "Cancelled (kept)",
            live.cancelled,
            f"Cancelled requests not deleted yet (kept {closed_days} days after cancelling).",
        ),
        Figure(
            "Resolved (kept)",
            live.resolved,
            f"Failures closed by a person without a retry, not deleted yet (kept {closed_days} days).",
        ),
    ]
