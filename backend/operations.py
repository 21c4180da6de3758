"""What support staff do, for the dashboard and the command line alike: find failures and stuck requests,
retry them, reconcile. Pages and ``streamdesk retry``/``reconcile`` call these; the DynamoDB work is in
``backend.store.reader`` (reads) and ``backend.store.actions`` (writes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamdesk_processor.item import ResolveReason, Status

from backend.api_client import ApiClient, SubmitResult
from backend.clock import now_ms
from backend.computed.failure_view import FailuresView, load_failures_view
from backend.computed.failures import FailureGroup, group_failures
from backend.computed.stuck import StuckRequest, TriggerHealth, find_stuck, reconcile
from backend.roles import Actor, require_operator
from backend.rollups.reader import RollupReader
from backend.settings import Settings
from backend.store.actions import ActionResult, RequestActions
from backend.store.models import RequestSummary
from backend.store.reader import RequestStore
from backend.store.resubmit import Linked, link_resubmission


def submit(client: ApiClient, body: str | dict[str, Any], actor: Actor) -> SubmitResult:
    """Send a request through the HTTP API on behalf of ``actor`` (operators only)."""
    require_operator(actor, "submit requests")
    return client.submit(body)


@dataclass
class Pipeline:
    """The store and the actions on one table, built once per settings."""

    settings: Settings
    store: RequestStore
    actions: RequestActions

    @classmethod
    def connect(cls, settings: Settings) -> Pipeline:
        return cls.over(RequestStore(settings))

    @classmethod
    def over(cls, store: RequestStore) -> Pipeline:
        """The pipeline of ``store``'s table, writing through the store's client."""
        actions = RequestActions(store.client, store.table, closed_retention_days=store.settings.closed_days)
        return cls(store.settings, store, actions)

    # ----------------------------------------------------------------------------------- failures
    def failure_groups(self) -> list[FailureGroup]:
        """Every FAILED request grouped by cause (reads the open-state index, never the whole table)."""
        return group_failures(self.store.open_requests([Status.FAILED]))

    def rollups(self) -> RollupReader:
        """The rollups of this stack (``RequestStore.rollups``: an outage is StoreUnavailable)."""
        return self.store.rollups()

    def failures_view(self, since_ms: int, until_ms: int) -> FailuresView:
        """The failures page: open failures by group (a bounded list) and each group's failures over
        [since, until] from the rollups (see ``backend.computed.failure_view``)."""
        return load_failures_view(self.store, self.rollups(), since_ms, until_ms)

    def failed_ids(self, group_key: str | None = None) -> list[str]:
        if group_key is None:
            return [s.id for s in self.store.open_requests([Status.FAILED])]
        for group in self.failure_groups():
            if group.key == group_key:
                return list(group.request_ids)
        return []

    def retry(
        self, ids: list[str], actor: Actor, on_batch: Callable[[list[ActionResult]], None] | None = None
    ) -> list[ActionResult]:
        require_operator(actor, "retry requests")
        return self.actions.redrive_many(ids, actor, on_batch=on_batch)

    def resolve(
        self,
        ids: list[str],
        reason: ResolveReason,
        note: str,
        actor: Actor,
        on_batch: Callable[[list[ActionResult]], None] | None = None,
    ) -> list[ActionResult]:
        """Close failures without retrying them (each must still be FAILED)."""
        require_operator(actor, "resolve failures")
        return self.actions.resolve_many(ids, reason, note, actor, on_batch=on_batch)

    def resolved(self) -> list[RequestSummary]:
        """Every failure closed without a retry and not deleted yet (the byState index, never a scan)."""
        return self.store.resolved_requests()

    def link_resubmission(self, original_id: str, copy_id: str, actor: Actor) -> Linked:
        """Link a request resubmitted as new to its original, both ways (after the API accepted it)."""
        return link_resubmission(self.store.client, self.store.table, original_id, copy_id, actor)

    def cancel(self, ids: list[str], actor: Actor) -> list[ActionResult]:
        """Cancel pending requests (each one only if nothing has claimed it yet)."""
        require_operator(actor, "cancel requests")
        return [self.actions.cancel(request_id, actor) for request_id in dict.fromkeys(ids)]

    # -------------------------------------------------------------------------------------- stuck
    def trigger_health(self) -> TriggerHealth:
        """The trigger as the dashboard sees it (local: its state file; deployed: the mapping's state)."""
        if self.settings.stack:
            from backend.deployed.health import trigger_health as deployed_trigger_health

            return deployed_trigger_health(self.settings)
        from backend.trigger_state import read_trigger_state

        return TriggerHealth.from_local_state(read_trigger_state(self.settings), now_ms())

    def stuck(
        self, stuck_after_ms: int | None = None, trigger: TriggerHealth | None = None
    ) -> list[StuckRequest]:
        """Requests open for longer than the threshold, each with its likely reason (``trigger``: the
        trigger's health if already known, e.g. cached by the dashboard; else it is read)."""
        threshold = stuck_after_ms or self.settings.stuck_after_ms
        open_items = self.store.open_requests([Status.PENDING, Status.PROCESSING])
        return find_stuck(open_items, trigger or self.trigger_health(), now_ms(), threshold)

    def reconcile(self, actor: Actor, stuck_after_ms: int | None = None) -> list[ActionResult]:
        """Hand back every stuck request a redrive can fix."""
        require_operator(actor, "reconcile stuck requests")
        threshold = stuck_after_ms or self.settings.stuck_after_ms
        return reconcile(self.stuck(threshold), self.actions, actor)
