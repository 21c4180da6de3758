"""Requests: a filtered, paged list (newest first) and the detail of one request.

``?id=<id>`` in the URL opens that request's detail directly (links from the submit page use it).
Bodies, errors and tracebacks are shown as text (``st.code``), never as HTML or Markdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from backend.dashboard import controls, detail_actions, export, formatting, notices, reads, sign_in
from backend.settings import Settings
from backend.store.calls import StoreUnavailable
from backend.store.models import RecordedError, RequestDetail, RequestFilter

settings = reads.app_settings()
actor = sign_in.page_actor(settings)  # everyone signed in may look; see sign_in.page_actor for why pages ask


# ------------------------------------------------------------------------------------ detail
def render_detail(settings: Settings, request_id: str) -> None:
    """Everything about one request. Re-reads on every refresh while it is not finished."""
    table = formatting.md_escape(settings.table)
    detail = notices.detail_or_notice(settings, request_id, f"No request with id {{id}} in table {table}.")
    if detail is None:
        return
    detail_actions.render_actions(settings, actor, detail)
    _detail_body(settings, detail)


def _detail_body(settings: Settings, detail: RequestDetail) -> None:
    s = detail.summary
    now = reads.now_ms()
    zone = formatting.display_zone()
    st.subheader("Request")
    st.code(s.id, language="text")
    flags = formatting.flags(s, now, settings)
    cols = st.columns(4)
    cols[0].metric("Status", s.status or "(missing)")
    cols[1].metric("Attempts", s.attempts)
    cols[2].metric("End to end", formatting.fmt_duration(_span(s.created_at, s.finished_at)))
    cols[3].metric(
        "Expires",
        formatting.fmt_expiry(s.ttl, now),
        help="DynamoDB's TTL deletes a succeeded, resolved or cancelled request after its retention; "
        "open failures are kept.",
    )
    st.caption(
        f"Created {formatting.fmt_time(s.created_at, precise=True, zone=zone)} · "
        f"last update {formatting.fmt_time(s.updated_at, precise=True, zone=zone)}"
    )
    if flags:
        st.caption("Flags: " + "; ".join(flags))
    if s.malformed:
        st.warning(
            "Some attributes are missing or have an unexpected type: "
            + ", ".join(s.malformed)
            + ". What could be read is shown below."
        )

    st.markdown("**Timeline**")
    timeline = formatting.timeline_frame(detail, zone)
    if timeline.empty:
        st.info("No timestamps recorded for this request.")
    else:
        st.dataframe(timeline, hide_index=True, key=f"timeline_{s.id}")

    st.markdown("**Body**")
    text, language = formatting.pretty_body(detail.body)
    st.code(text, language=language, wrap_lines=True)

    if detail.failure is not None:
        st.markdown("**Error**")
        _error_block(detail.failure)
    if detail.transient_failure is not None:
        st.markdown("**Latest transient error** (retries remain)")
        _error_block(detail.transient_failure)

    _steps(detail, zone)

    if detail.result:
        st.markdown("**Result**")
        st.dataframe(
            pd.DataFrame({"key": list(detail.result), "value": list(detail.result.values())}),
            hide_index=True,
            key=f"result_{s.id}",
        )

    with st.expander("Every attribute, as stored", expanded=False):
        st.code(formatting.json_text(detail.attributes), language="json", wrap_lines=True)


def _span(start: int | None, end: int | None) -> int | None:
    return end - start if start is not None and end is not None else None


def _steps(detail: RequestDetail, zone: ZoneInfo) -> None:
    st.markdown("**Completed steps**")
    if not detail.steps:
        st.caption("none yet")
        return
    steps = pd.DataFrame(
        [
            {
                "step": step.name,
                "at": formatting.fmt_time(step.at, precise=True, zone=zone),
                "attempt": "" if step.attempt is None else str(step.attempt),
            }
            for step in detail.completed_steps
        ]
    )
    st.dataframe(steps, hide_index=True, key=f"steps_{detail.summary.id}")


def _error_block(error: RecordedError) -> None:
    st.code(formatting.json_text(error.summary), language="json", wrap_lines=True)
    if error.traceback:
        st.caption("Traceback")
        st.code(error.traceback, language="text")


# ------------------------------------------------------------------------------------ list
@dataclass(frozen=True)
class Choice:
    """What the filter controls say; resolved into a RequestFilter against a moment ("anchor")."""

    states: frozenset[str]
    time_range: controls.TimeRange
    request_id: str | None
    text: str | None

    def at(self, anchor: int) -> RequestFilter:
        since, until = self.time_range.bounds(anchor)
        # The list's default range said outright, so that the list and its export cover the same requests.
        return RequestFilter(self.states, since, until, self.request_id, self.text).bounded(anchor)


def _filter_controls() -> Choice:
    with st.container(border=True):
        states = st.multiselect(
            "States", controls.STATE_CHOICES, key="requests_states", placeholder="all states"
        )
        time_range = controls.time_range_control("requests", allow_any=True, default=controls.ANY_TIME)
        left, right = st.columns(2)
        request_id = left.text_input("Exact id", key="requests_id").strip()
        text = right.text_input("Text in body or error", key="requests_text").strip()
    return Choice(frozenset(states), time_range, request_id or None, text or None)


def _token_stack(choice: Choice) -> list[str | None]:
    """The page tokens seen so far for this filter; a different filter starts again at page 1."""
    signature = repr((sorted(choice.states), choice.time_range, choice.request_id, choice.text))
    if st.session_state.get(controls.KEY_FILTER_SIGNATURE) != signature:
        st.session_state[controls.KEY_FILTER_SIGNATURE] = signature
        st.session_state[controls.KEY_TOKENS] = [None]
        st.session_state.pop(controls.KEY_SELECTED, None)
    tokens: list[str | None] = st.session_state[controls.KEY_TOKENS]
    return tokens


def _next_page(token: str, anchor: int) -> None:
    # Later pages keep the moment page 1 was read at: a token only makes sense with the same filter.
    if len(st.session_state[controls.KEY_TOKENS]) == 1:
        st.session_state[controls.KEY_ANCHOR] = anchor
    st.session_state[controls.KEY_TOKENS].append(token)
    st.session_state.pop(controls.KEY_SELECTED, None)


def _previous_page() -> None:
    tokens = st.session_state[controls.KEY_TOKENS]
    if len(tokens) > 1:
        tokens.pop()
    st.session_state.pop(controls.KEY_SELECTED, None)


def _select_from_table(ids: list[str]) -> None:
    """Turns the table's row selection into a request id (ids survive a refresh; row numbers do not)."""
    state = st.session_state.get(controls.KEY_TABLE)
    rows = list(state.selection.rows) if state is not None else []
    if rows and rows[0] < len(ids):
        st.session_state[controls.KEY_SELECTED] = ids[rows[0]]
    elif not rows:
        st.session_state.pop(controls.KEY_SELECTED, None)  # unticking the row closes the detail


def _exported(build: Callable[[Iterable[RequestDetail]], bytes], flt: RequestFilter) -> bytes:
    return build(reads.export_details(settings, flt))


def _export_buttons(choice: Choice) -> None:
    """CSV and JSON of everything the filter matches, generated only when a button is clicked."""
    flt = choice.at(reads.now_ms())
    row = st.container(horizontal=True)
    for kind, build, file_name, mime in (
        ("CSV", export.export_csv, "streamdesk-requests.csv", "text/csv"),
        ("JSON", export.export_json, "streamdesk-requests.json", "application/json"),
    ):
        row.download_button(
            f"Export {kind}",
            data=export.deferred(partial(_exported, build, flt), kind),
            file_name=file_name,
            mime=mime,
            on_click="ignore",
            key=f"export_{kind.lower()}",
        )


def render_list(choice: Choice) -> None:
    tokens = _token_stack(choice)

    @st.fragment(run_every=controls.refresh_interval(settings))
    def live_list() -> None:
        now = reads.now_ms()
        # Page 1 follows the clock; later pages stay on the moment page 1 was read at.
        anchor = now if len(tokens) == 1 else int(st.session_state.get(controls.KEY_ANCHOR, now))
        flt = choice.at(anchor)
        try:
            page = reads.cached_page(settings, flt, settings.page_size, tokens[-1])
            empty_table = not page.items and len(tokens) == 1 and reads.cached_table_is_empty(settings)
        except StoreUnavailable as error:
            notices.cannot_read(error)
            return
        if empty_table:
            st.info(
                f"The table {settings.table} is empty: no request has been sent yet. "
                "Send one from the Submit page, or run `make demo`."
            )
            return
        first = (len(tokens) - 1) * settings.page_size
        if page.items:
            st.caption(
                f"Page {len(tokens)}: requests {first + 1} to {first + len(page.items)}, newest first · "
                f"updated {formatting.fmt_time(now, zone=formatting.display_zone())}"
            )
        else:
            st.info("No request matches this filter.")
        ids = [item.id for item in page.items]
        st.dataframe(
            formatting.summaries_frame(page.items, now, settings),
            hide_index=True,
            on_select=lambda: _select_from_table(ids),
            selection_mode="single-row",
            key=controls.KEY_TABLE,
        )
        _pager(len(tokens) == 1, page.next_token, anchor)
        _chosen_detail(ids)

    live_list()


def _pager(first_page: bool, next_token: str | None, anchor: int) -> None:
    row = st.container(horizontal=True)
    row.button("← Previous", disabled=first_page, on_click=_previous_page, key="page_previous")
    if next_token is not None:
        row.button("Next →", on_click=_next_page, args=(next_token, anchor), key="page_next")
    else:
        row.button("Next →", disabled=True, key="page_next")


def _chosen_detail(ids: list[str]) -> None:
    """The detail of the request chosen in the table or the box, below the list."""
    if st.session_state.get(controls.KEY_SELECTED) not in ids:
        st.session_state.pop(controls.KEY_SELECTED, None)
    chosen = st.selectbox(
        "Open a request (or select a row above)",
        ids,
        index=None,
        placeholder="choose an id",
        key=controls.KEY_SELECTED,
    )
    if chosen:
        st.page_link(
            "pages/requests.py",
            label="Link to this request",
            icon=":material/link:",
            query_params=formatting.detail_query(chosen),
        )
        render_detail(settings, chosen)


# ------------------------------------------------------------------------------------ page
requested_id = st.query_params.get(formatting.DETAIL_PARAM)
if requested_id is not None and requested_id.strip():
    detail_id: str = requested_id.strip()
    st.title("Request detail")
    if st.button("← All requests", key="back_to_list"):
        st.query_params.clear()
        st.rerun()

    @st.fragment(run_every=controls.refresh_interval(settings))
    def live_detail() -> None:
        render_detail(settings, detail_id)

    live_detail()
else:
    st.title("Requests")
    filter_choice = _filter_controls()
    _export_buttons(filter_choice)
    render_list(filter_choice)
