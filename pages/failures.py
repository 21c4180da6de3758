"""Failures: failed requests grouped by cause, their samples, and retry or resolve (one, the selected, or a
group). Resolving closes a failure without retrying it, with a reason; resolved failures are shown on demand.

Each group shows what is open now (the newest open failures, a bounded list from the state index: what a
retry or resolution acts on) and how often it failed in the chosen time range (the rollups: the same cost
at any traffic); see ``backend/computed/failure_view.py``.

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

from backend.computed.failure_view import FailuresView
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
def _closed_groups_table(view: FailuresView, range_label: str) -> None:
    """Groups that failed in the range and have nothing open now (retried or resolved): history only."""
    closed = [row for row in view.groups if row.open is None]
    if not closed:
        return
    st.markdown(f"**Failed in {range_label}, none open now** (retried or resolved since)")
    table = pd.DataFrame(
        [
            {
                "group": r.key,
                "error type": r.error_type,
                "message": r.pattern,
                "failed in range": r.failed_in_range,
            }
            for r in closed
        ],
        columns=["group", "error type", "message", "failed in range"],
    )
    st.dataframe(table, hide_index=True, key="fail_closed_groups_table")


def _groups_table(view: FailuresView, range_label: str) -> None:
    zone = formatting.display_zone()
    table = pd.DataFrame(
        [
            {
                "group": row.key,
                "error type": row.error_type,
                "message": row.pattern,
                "open now": row.open_now,
                "failed in range": row.failed_in_range,
                "first seen": formatting.fmt_time(row.open.first_seen if row.open else None, zone=zone),
                "last seen": formatting.fmt_time(row.open.last_seen if row.open else None, zone=zone),
                "failed step(s)": ", ".join(f"{step} ({n})" for step, n in row.open.steps.items())
                if row.open
                else "",
            }
            for row in view.open_rows
        ],
        columns=[
            "group",
            "error type",
            "message",
            "open now",
            "failed in range",
            "first seen",
            "last seen",
            "failed step(s)",
        ],
    )
    st.dataframe(
        table,
        hide_index=True,
        key="fail_groups_table",
        column_config={
            "open now": st.column_config.NumberColumn(
                "open now", help=f"{Status.FAILED} now, waiting for a retry or a resolution"
            ),
            "failed in range": st.column_config.NumberColumn(
                "failed in range",
                help=f"Failures counted in {range_label} (the rollups), a retried or resolved one included",
            ),
        },
    )
    st.caption(
        "Open now: failed and waiting for a retry or a resolution; first seen, last seen and failed steps "
        "are theirs. Failed in range: every failure of the group counted in the range (the rollups), those "
        "retried or resolved since included. "
        + (
            f"Open now counts the newest {view.listed} open failures only (of {view.open_total})."
            if view.more_open
            else ""
        )
    )


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


def _group(group: FailureGroup, more_open: bool) -> None:
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
    whole = f"{group.count}{'+' if more_open else ''}"
    if right.button(f"Retry the whole group ({whole})", key=f"fail_retry_group_{group.key}"):
        _ask(_whole_group(group, more_open), f"the whole group {group.key}", group.key)
    _resolve_controls(group, list(selected), more_open)
    _confirmation(group)


def _whole_group(group: FailureGroup, more_open: bool) -> list[str]:
    """Every open failure of the group: the listed ones, or (past the list's bound) all of them, read now."""
    if not more_open:
        return list(group.request_ids)
    try:
        return reads.failed_ids_of_group(settings, group.key)
    except StoreUnavailable as error:
        notices.cannot_read(error)
        return list(group.request_ids)


def _resolve_controls(group: FailureGroup, selected: list[str], more_open: bool) -> None:
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
    whole = f"{group.count}{'+' if more_open else ''}"
    if right.button(f"Resolve the whole group ({whole})", key=f"fail_resolve_group_{group.key}"):
        _ask(_whole_group(group, more_open), f"the whole group {group.key}", group.key, resolution)


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
def _summary(view: FailuresView, range_label: str) -> None:
    """The range's figures from the rollups, and the exact number of open failures (the gauge)."""
    if view.counts_error:
        st.warning(
            f"The counts over time cannot be read ({formatting.md_escape(view.counts_error)}); "
            "the open failures below are read from the requests."
        )
        return
    cols = st.columns(4)
    cols[0].metric("Open failures", view.open_total, help="Exact: the rollups' open-failures gauge.")
    cols[1].metric(f"Failed in {range_label}", view.failed_in_range)
    cols[2].metric(f"Resolved in {range_label}", view.resolved_in_range)
    cols[3].metric(f"Reopened in {range_label}", view.reopened_in_range)


st.title("Failures")
st.caption(
    "Failed requests grouped by error type and message (numbers, ids and times folded): open now, to retry "
    "or resolve, and how often each group failed in the time range (from the rollups). "
    "Use Refresh now in the sidebar to read them again."
)
if not actor.may_change:
    st.info(f"You are a {actor.role.value}: you see every failure; retrying and resolving are for operators.")
time_range = controls.time_range_control("fail", allow_any=False, default="1 day")
range_label = f"the last {time_range.label}" if time_range.span_ms else "the range"
show_resolved = st.toggle("Also show resolved failures", key="fail_show_resolved")
_report()
since_ms, until_ms = time_range.bounds(reads.now_ms())
try:
    view = reads.cached_failures_view(settings, since_ms or 0, until_ms or reads.now_ms())
except StoreUnavailable as error:
    notices.cannot_read(error)
    st.stop()
_summary(view, range_label)
open_rows = view.open_rows
if not open_rows:
    st.success("No failed requests.")
elif view.more_open:
    st.subheader(
        f"{view.open_total if view.open_total is not None else 'More than ' + str(view.listed)} failed "
        f"request(s); the newest {view.listed} in {len(open_rows)} group(s)"
    )
else:
    st.subheader(f"{view.listed} failed request(s) in {len(open_rows)} group(s)")
if open_rows:
    _groups_table(view, range_label)
_closed_groups_table(view, range_label)
for number, row in enumerate(open_rows):
    assert row.open is not None
    title = f"{row.error_type}: {row.pattern}"[:200]
    # Error types and messages come from requests: literal text, never Markdown links or images.
    with st.expander(f"{formatting.md_escape(title)} ({row.open_now})", expanded=number == 0):
        _group(row.open, view.more_open)
if show_resolved:
    _resolved_section()
