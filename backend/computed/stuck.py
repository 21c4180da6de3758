"""Stuck requests: pending or processing for longer than a threshold, and the likely reason why.

The reason is inferred from what the dashboard can see: the trigger's health (its heartbeat, iterator age
and last batch), the request's age against the stream's 24-hour retention, and its processing claim.
``reconcile`` hands back the ones a redrive can fix; the others are fixed where they are caused (start the
trigger, let a backlog drain).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from streamdesk_processor.item import MS_PER_DAY, Status

from backend.computed.stats import stuck_for_ms
from backend.roles import Actor
from backend.store.actions import ActionResult, RequestActions
from backend.store.models import RequestSummary
from backend.trigger_state import TriggerState

STREAM_RETENTION_MS = MS_PER_DAY  # DynamoDB Streams keep records for 24 hours
TRIGGER_LAGGING_AFTER_MS = 60_000  # iterator age beyond this is a backlog


class StuckReason(StrEnum):
    TRIGGER_STOPPED = "trigger stopped"
    TRIGGER_LAGGING = "trigger lagging"
    BEYOND_STREAM_RETENTION = "older than the stream's 24-hour retention"
    CLAIM_ABANDONED = "processing claim never finished"
    RECORD_LOST = "no stream record is coming"


# What a person should do, per reason.
ADVICE: dict[StuckReason, str] = {
    StuckReason.TRIGGER_STOPPED: "Start the trigger (locally: restart `make up`; on AWS: enable the event "
    "source mapping). Its records wait in the stream for up to 24 hours.",
    StuckReason.TRIGGER_LAGGING: "A backlog: the requests will be processed as the trigger catches up. "
    "Watch the iterator age; if it keeps growing, a record may be blocking its shard.",
    StuckReason.BEYOND_STREAM_RETENTION: "Its stream record is gone; only a redrive brings it back. "
    "Reconcile.",
    StuckReason.CLAIM_ABANDONED: "The processor started it and never finished (crash or timeout). Reconcile.",
    StuckReason.RECORD_LOST: "The trigger is healthy but nothing is processing it (its record was "
    "filtered out or lost). Reconcile.",
}
FIXED_BY_RECONCILE = frozenset(
    {StuckReason.BEYOND_STREAM_RETENTION, StuckReason.CLAIM_ABANDONED, StuckReason.RECORD_LOST}
)


@dataclass(frozen=True)
class TriggerHealth:
    """What the dashboard knows about the trigger (local state file, or the deployed mapping's metrics)."""

    running: bool | None  # None: unknown
    iterator_age_ms: int | None = None
    last_batch_at: int | None = None
    heartbeat_at: int | None = None

    @classmethod
    def from_local_state(cls, state: TriggerState | None, now_ms: int) -> TriggerHealth:
        """From the local trigger's state file (None when it never ran)."""
        if state is None:
            return cls(running=False)
        return cls(
            running=state.is_alive(now_ms),
            iterator_age_ms=state.iterator_age_ms,
            last_batch_at=state.last_batch_at,
            heartbeat_at=state.heartbeat_at,
        )


@dataclass(frozen=True)
class StuckRequest:
    summary: RequestSummary
    reason: StuckReason
    idle_ms: int  # how long it has waited (since created or redriven; processing: since started)

    @property
    def fixed_by_reconcile(self) -> bool:
        return self.reason in FIXED_BY_RECONCILE


def diagnose(
    item: RequestSummary, trigger: TriggerHealth, now_ms: int, stuck_after_ms: int
) -> StuckRequest | None:
    """Why ``item`` is stuck, or None if it is not stuck (``stats.stuck_for_ms`` decides that)."""
    idle = stuck_for_ms(item, now_ms, stuck_after_ms)
    if idle is None:
        return None
    entered = item.redriven_at or item.created_at or (now_ms - idle)
    if item.status == Status.PENDING and now_ms - entered > STREAM_RETENTION_MS:
        reason = StuckReason.BEYOND_STREAM_RETENTION
    elif trigger.running is False:
        reason = StuckReason.TRIGGER_STOPPED
    elif (trigger.iterator_age_ms or 0) > TRIGGER_LAGGING_AFTER_MS and item.status == Status.PENDING:
        reason = StuckReason.TRIGGER_LAGGING
    elif item.status == Status.PROCESSING:
        reason = StuckReason.CLAIM_ABANDONED
    else:
        reason = StuckReason.RECORD_LOST
    return StuckRequest(item, reason, idle)


def find_stuck(
    open_items: Iterable[RequestSummary], trigger: TriggerHealth, now_ms: int, stuck_after_ms: int
) -> list[StuckRequest]:
    """Every stuck request among ``open_items``, the longest idle first."""
    found = [d for i in open_items if (d := diagnose(i, trigger, now_ms, stuck_after_ms)) is not None]
    return sorted(found, key=lambda s: -s.idle_ms)


def reconcile(stuck: Iterable[StuckRequest], actions: RequestActions, actor: Actor) -> list[ActionResult]:
    """Hand back every stuck request a redrive can fix; the others are left for their cause to be fixed."""
    results = []
    for entry in stuck:
        if not entry.fixed_by_reconcile:
            continue
        results.append(
            actions.hand_back_stuck(
                entry.summary.id,
                Status(entry.summary.status),
                seen_updated_at=entry.summary.updated_at,
                reason=f"stuck {entry.idle_ms // 1000} s: {entry.reason.value}",
                actor=actor,
            )
        )
    return results
