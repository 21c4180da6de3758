"""Failures: failed requests grouped by cause, their samples, and retry or resolve (one, the selected, or a
group). Resolving closes a failure without retrying it, with a reason; resolved failures are shown on demand.

Retries and resolutions are for operators (``backend/roles.py``): a viewer sees the same groups and samples
and no control, and the backend refuses a viewer's change anyway. A bulk action asks for confirmation, runs
in bounded batches with a progress bar, and reports what happened to each request, following them.
Bodies, errors and tracebacks are shown as text (``st.code``), never as HTML or Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
import streamlit as st
from streamdesk_processor.item import MAX_NOTE_CHARS, ResolveReason, Status

from backend.computed.failures import FailureGroup
from backend.dashboard import controls, formatting, notices, reads, sign_in
from backend.roles import Actor, PermissionDenied
from backend.store.actions import ActionResult, Outcome
from backend.store.calls import StoreUnavailable

KEY_PENDING: Final = "sd_failures_pending"  # a bulk retry or resolution waiting for confirmation
KEY_REPORT: Final = "sd_failures_report"  # what the latest retry did, request by request
SAMPLES_SHOWN: Final = 10
SELECTABLE: Final = 500  # requests of a group offered for selection (a whole group has no limit)
FOLLOWED: Final = 100  # requests of a report whose status is followed live


@dataclass(frozen=True)
class Resolution:
    """Why a selection or a group is closed without a retry."""

    reason: ResolveReason
    note: str


@dataclass(frozen=True)
class RetryReport:
    """What the latest retry (or resolution) did, kept in the session until dismissed."""

    what: str
    results: list[tuple[str, str, str]]  # id, outcome, detail
    at: int  # epoch ms
    action: str = "retry"


settings = reads.app_settings()
actor = sign_in.page_actor(settings)


# ------------------------------------------------------------------------------------ retrying
def _retry(ids: list[str], what: str, who: Actor, resolution: Resolution | None = None) -> None:
    """Retry (or, with a ``resolution``, resolve) ``ids`` in bounded batches with a progress bar; the
    report is kept in the session."""
    total = len(ids)
    action = "retry" if resolution is None else "resolve"
    progress = st.progress(
        0.0, text=f"{'Retrying' if resolution is None else 'Resolving'} {total} request(s)…"
    )
    done: list[ActionResult] = []

    def on_batch(batch: list[ActionResult]) -> None:
        done.extend(batch)
        progress.progress(len(done) / max(total, 1), text=f"{len(done)} of {total} done")

    pipeline = reads.pipeline_for(settings)
    try:
        if resolution is None:
            results = pipeline.retry(ids, who, on_batch=on_batch)
        else:
            results = pipeline.resolve(ids, resolution.reason, resolution.note, who, on_batch=on_batch)
    except (PermissionDenied, ValueError) as error:
        st.error(str(error))
        return
    except StoreUnavailable as error:
        st.error(f"The {action} stopped: {error}. {len(done)} of {total} request(s) were handled.")
        results = done
    st.session_state[KEY_REPORT] = RetryReport(
        what, [(r.request_id, r.outcome.value, r.detail) for r in results], reads.now_ms(), action
    )
    st.session_state.pop(KEY_PENDING, None)
    reads.clear_caches()
    st.rerun()


def _ask(ids: list[str], what: str, group_key: str, resolution: Resolution | None = None) -> None:
    st.session_state[KEY_PENDING] = {"ids": ids, "what": what, "group": group_key, "resolve_as": resolution}


def _confirmation(group: FailureGroup) -> None:
    """The confirm step of a bulk retry or resolution asked for in this group."""
    pending: dict[str, Any] | None = st.session_state.get(KEY_PENDING)
    if not pending or pending.get("group") != group.key:
        return
    ids: list[str] = pending["ids"]
    resolution: Resolution | None = pending.get("resolve_as")
    if resolution is None:
        st.warning(
            f"Retry {len(ids)} request(s) ({pending['what']})? Each {Status.FAILED} one goes back to "
            f"{Status.PENDING} and is processed again from its first unfinished step; requests no longer "
            f"{Status.FAILED} are left as they are."
        )
    else:
        st.warning(
            f"Resolve {len(ids)} request(s) ({pending['what']}) as “{resolution.reason}” without retrying "
            f"them? Each {Status.FAILED} one becomes {Status.RESOLVED}: it leaves the open failures, is kept "
            f"{settings.closed_days} days, and can still be retried from its detail; requests no longer "
            f"{Status.FAILED} are left as they are."
        )
    verb = "retry" if resolution is None else "resolve"
    confirm, cancel = st.columns([1, 4])
    if confirm.button(f"Confirm: {verb} {len(ids)}", type="primary", key=f"fail_confirm_{group.key}"):
        _retry(ids, pending["what"], actor, resolution)
    if cancel.button("Cancel", key=f"fail_cancel_{group.key}"):
        st.session_state.pop(KEY_PENDING, None)
        st.rerun()


# ------------------------------------------------------------------------------------ report
def _report() -> None:
    report: RetryReport | None = st.session_state.get(KEY_REPORT)
    if report is None:
        return
    results = report.results
    counts: dict[str, int] = {}
    for _, outcome, _ in results:
        counts[outcome] = counts.get(outcome, 0) + 1
    with st.container(border=True):
        st.subheader(f"Latest {report.action}")
        st.caption(
            f"{report.what}, at {formatting.fmt_time(report.at, zone=formatting.display_zone())}: "
            + ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
        )

        @st.fragment(run_every=controls.refresh_interval(settings))
        def follow() -> None:
            followed = [
                request_id
                for request_id, outcome, _ in results[:FOLLOWED]
                if outcome in (Outcome.REDRIVEN, Outcome.RESOLVED)
            ]
            try:
                # Only ids and statuses travel: the retried requests' bodies and tracebacks stay put.
                found = reads.cached_statuses(settings, followed)
            except StoreUnavailable as error:
                notices.cannot_read(error)
                return
            now_status = {i: (found[i] or "(missing)") if i in found else "(deleted)" for i in followed}
            tally = {s: list(now_status.values()).count(s) for s in Status}
            cols = st.columns(4)
            cols[0].metric("Succeeded since", tally[Status.SUCCEEDED])
            cols[1].metric("Failed again", tally[Status.FAILED])
            cols[2].metric("Waiting", tally[Status.PENDING])
            cols[3].metric("Processing", tally[Status.PROCESSING])
            table = pd.DataFrame(
                [
                    {
                        "id": request_id,
                        "outcome": outcome,
                        "detail": detail,
                        "status now": now_status.get(request_id, ""),
                        "open": formatting.detail_href(request_id),
                    }
                    for request_id, outcome, detail in results
                ],
                columns=["id", "outcome", "detail", "status now", "open"],
            )
            st.dataframe(
                table,
                hide_index=True,
                key="fail_report_table",
                column_config={"open": st.column_config.LinkColumn("open", display_text="open detail")},
            )

        follow()
        if st.button("Dismiss", key="fail_report_dismiss"):
            st.session_state.pop(KEY_REPORT, None)
            st.rerun()


# ------------------------------------------------------------------------------------ groups
def _groups_table(groups: list[FailureGroup]) -> None:
    zone = formatting.display_zone()
    table = pd.DataFrame(
        [
            {
                "group": g.key,
                "error type": g.error_type,
                "message": g.pattern,
                "count": g.count,
                "first seen": formatting.fmt_time(g.first_seen, zone=zone),
                "last seen": formatting.fmt_time(g.last_seen, zone=zone),
                "failed step(s)": ", ".join(f"{step} ({n})" for step, n in g.steps.items()),
            }
            for g in groups
        ],
        columns=["group", "error type", "message", "count", "first seen", "last seen", "failed step(s)"],
    )
    st.dataframe(table, hide_index=True, key="fail_groups_table")


def _sample(request_id: str, group_key: str) -> None:
    """One failed request: body, error and traceback as text, a link to its detail, retry it alone."""
    detail = notices.detail_or_notice(settings, request_id, "Request {id} no longer exists.")
    if detail is None:
        return
    s = detail.summary
    st.page_link(
        "pages/requests.py",
        label="Open its full detail",
        icon=":material/open_in_new:",
        query_params=formatting.detail_query(request_id),
    )
    st.caption(f"Status {formatting.md_escape(s.status or '(missing)')}, attempts {s.attempts}")
    text, language = formatting.pretty_body(detail.body)
    st.markdown("**Body**")
    st.code(text, language=language, wrap_lines=True)
    recorded = detail.failure
    st.markdown("**Error**")
    summary = recorded.summary if recorded is not None else {}
    st.code(
        formatting.json_text(summary) if summary else "(no error recorded)", language="json", wrap_lines=True
    )
    if recorded is not None and recorded.traceback:
        st.markdown("**Traceback**")
        st.code(recorded.traceback, language="text")
    if (
        actor.may_change
        and s.status == Status.FAILED
        and st.button("Retry this request", key=f"fail_retry_one_{group_key}", icon=":material/replay:")
    ):
        _retry([request_id], f"request {request_id}", actor)


def _group(group: FailureGroup) -> None:
    zone = formatting.display_zone()
    st.caption(
        f"Group {group.key} · {group.count} request(s) · first seen "
        f"{formatting.fmt_time(group.first_seen, zone=zone)} · last seen "
        f"{formatting.fmt_time(group.last_seen, zone=zone)} · failed at "
        + ", ".join(f"{formatting.md_escape(step)} ({n})" for step, n in group.steps.items())
    )
    st.code(f"{group.error_type}: {group.pattern}", language="text", wrap_lines=True)
    samples = group.samples(SAMPLES_SHOWN)
    st.dataframe(
        pd.DataFrame({"sample request": samples, "open": [formatting.detail_href(i) for i in samples]}),
        hide_index=True,
        key=f"fail_samples_{group.key}",
        column_config={"open": st.column_config.LinkColumn("open", display_text="open detail")},
    )
    chosen = st.selectbox(
        "Open a sample", samples, index=None, placeholder="choose an id", key=f"fail_open_{group.key}"
    )
    if chosen:
        _sample(chosen, group.key)

    if not actor.may_change:
        return
    st.markdown("**Retry or resolve**")
    selected = st.multiselect(
        "Requests to retry or resolve",
        group.request_ids[:SELECTABLE],
        key=f"fail_select_{group.key}",
        placeholder="choose ids, or retry the whole group",
    )
    left, right = st.columns(2)
    if left.button(
        f"Retry selected ({len(selected)})", key=f"fail_retry_selected_{group.key}", disabled=not selected
    ):
        _ask(list(selected), f"{len(selected)} selected of group {group.key}", group.key)
    if right.button(f"Retry the whole group ({group.count})", key=f"fail_retry_group_{group.key}"):
        _ask(list(group.request_ids), f"the whole group {group.key}", group.key)
    _resolve_controls(group, list(selected))
    _confirmation(group)


def _resolve_controls(group: FailureGroup, selected: list[str]) -> None:
    """Close the selected requests, or the whole group, without retrying them: a reason and a note."""
    left, right = st.columns([1, 2])
    reason = left.selectbox("Reason", list(ResolveReason), key=f"fail_reason_{group.key}")
    note = right.text_input(
        "Note (a ticket, a sentence; needed for “other”)",
        max_chars=MAX_NOTE_CHARS,
        key=f"fail_note_{group.key}",
    )
    resolution = Resolution(reason or ResolveReason.OTHER, note)
    left, right = st.columns(2)
    if left.button(
        f"Resolve selected ({len(selected)})", key=f"fail_resolve_selected_{group.key}", disabled=not selected
    ):
        _ask(selected, f"{len(selected)} selected of group {group.key}", group.key, resolution)
    if right.button(f"Resolve the whole group ({group.count})", key=f"fail_resolve_group_{group.key}"):
        _ask(list(group.request_ids), f"the whole group {group.key}", group.key, resolution)


def _resolved_section() -> None:
    """Failures closed without a retry and not expired yet: shown on demand, never counted as open."""
    try:
        resolved = reads.cached_resolved(settings)
    except StoreUnavailable as error:
        notices.cannot_read(error)
        return
    st.subheader(f"{len(resolved)} resolved failure(s), kept {settings.closed_days} days each")
    zone = formatting.display_zone()
    table = pd.DataFrame(
        [
            {
                "id": s.id,
                "error type": s.error_type or "",
                "message": s.error_message or "",
                "resolved": formatting.fmt_time(s.updated_at, zone=zone),
                "expires": formatting.fmt_expiry(s.ttl, reads.now_ms()),
                "open": formatting.detail_href(s.id),
            }
            for s in resolved
        ],
        columns=["id", "error type", "message", "resolved", "expires", "open"],
    )
    st.dataframe(
        table,
        hide_index=True,
        key="fail_resolved_table",
        column_config={"open": st.column_config.LinkColumn("open", display_text="open detail")},
    )


# ------------------------------------------------------------------------------------ page
st.title("Failures")
st.caption(
    "Failed requests grouped by error type and message (numbers, ids and times folded). "
    "Use Refresh now in the sidebar to read them again."
)
if not actor.may_change:
    st.info(f"You are a {actor.role.value}: you see every failure; retrying and resolving are for operators.")
show_resolved = st.toggle("Also show resolved failures", key="fail_show_resolved")
_report()
try:
    failure_groups = reads.cached_failure_groups(settings)
except StoreUnavailable as error:
    notices.cannot_read(error)
    st.stop()
if not failure_groups:
    st.success("No failed requests.")
else:
    st.subheader(
        f"{sum(g.count for g in failure_groups)} failed request(s) in {len(failure_groups)} group(s)"
    )
    _groups_table(failure_groups)
    for number, failure_group in enumerate(failure_groups):
        title = f"{failure_group.error_type}: {failure_group.pattern}"[:200]
        # Error types and messages come from requests: literal text, never Markdown links or images.
        with st.expander(f"{formatting.md_escape(title)} ({failure_group.count})", expanded=number == 0):
            _group(failure_group)
if show_resolved:
    _resolved_section()
