"""What an operator can do from one request's detail: cancel it while it is pending, retry or resolve a
failure, retry a resolved one, add a note, resubmit it as a new request.

Every write goes through :class:`backend.operations.Pipeline`, which refuses a viewer whatever a page asks;
a viewer sees no control here at all. The outcome of the latest action is kept in the session and shown
above the controls; the caches are cleared so the detail shows the change at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import streamlit as st
from streamdesk_processor.item import (
    MAX_NOTE_CHARS,
    RESUBMITTED_AS,
    RESUBMITTED_FROM,
    ResolveReason,
    Status,
)

from backend.dashboard import controls, formatting, reads
from backend.operations import Pipeline
from backend.roles import Actor, PermissionDenied
from backend.settings import Settings
from backend.store.actions import ActionResult, Outcome
from backend.store.calls import StoreUnavailable
from backend.store.models import RequestDetail

KEY_OUTCOME: Final = "sd_detail_outcome"  # (request id, what the latest action did)
KEY_RESUBMIT: Final = controls.KEY_RESUBMIT_FROM
DONE: Final = {Outcome.CANCELLED, Outcome.REDRIVEN, Outcome.RESOLVED, Outcome.NOTED}


def render_links(detail: RequestDetail) -> None:
    """Links to the request this one was resubmitted from, and to those resubmitted from it."""
    origin = detail.attributes.get(RESUBMITTED_FROM)
    if isinstance(origin, str) and origin:
        _link(origin, f"Resubmitted from {origin}")
    copies = detail.attributes.get(RESUBMITTED_AS)
    for copy in copies if isinstance(copies, list) else []:
        _link(str(copy), f"Resubmitted as {copy}")


def _link(request_id: str, label: str) -> None:
    st.page_link(
        "pages/requests.py",
        label=formatting.md_escape(label),
        icon=":material/link:",
        query_params=formatting.detail_query(request_id),
    )


def render_actions(settings: Settings, actor: Actor, detail: RequestDetail) -> None:
    """The action panel of one request (nothing for a viewer)."""
    s = detail.summary
    render_links(detail)
    _latest_outcome(s.id)
    if not actor.may_change:
        return
    with st.container(border=True):
        st.markdown("**Act on this request**")
        cols = st.columns(3)
        if s.cancellable and cols[0].button(
            "Cancel this request", key=f"detail_cancel_{s.id}", icon=":material/cancel:"
        ):
            _act(settings, s.id, "cancel", lambda p: p.cancel([s.id], actor)[0])
        if s.status in (Status.FAILED, Status.RESOLVED) and cols[1].button(
            "Retry", key=f"detail_retry_{s.id}", icon=":material/replay:"
        ):
            _act(settings, s.id, "retry", lambda p: p.retry([s.id], actor)[0])
        if detail.body is not None and cols[2].button(
            "Resubmit as new", key=f"detail_resubmit_{s.id}", icon=":material/content_copy:"
        ):
            # The submit page opens with a copy of the body; sending it makes a new request, linked back.
            st.session_state[KEY_RESUBMIT] = s.id
            st.session_state[controls.KEY_BODY] = detail.body
            st.switch_page("pages/submit.py")
        if s.status == Status.FAILED:
            _resolve_form(settings, actor, s.id)
        _note_form(settings, actor, s.id)


def _resolve_form(settings: Settings, actor: Actor, request_id: str) -> None:
    left, right = st.columns([1, 2])
    reason = left.selectbox("Resolve reason", list(ResolveReason), key=f"detail_reason_{request_id}")
    note = right.text_input(
        "Resolve note (a ticket, a sentence)",
        max_chars=MAX_NOTE_CHARS,
        key=f"detail_resolve_note_{request_id}",
    )
    if st.button("Resolve without retrying", key=f"detail_resolve_{request_id}", icon=":material/done:"):
        _act(
            settings,
            request_id,
            "resolve",
            lambda p: p.resolve([request_id], reason or ResolveReason.OTHER, note, actor)[0],
        )


def _note_form(settings: Settings, actor: Actor, request_id: str) -> None:
    note = st.text_input(
        "Add a note (e.g. a ticket reference)", max_chars=MAX_NOTE_CHARS, key=f"detail_note_{request_id}"
    )
    if st.button("Add note", key=f"detail_add_note_{request_id}", disabled=not note.strip()):
        _act(settings, request_id, "note", lambda p: p.actions.add_note(request_id, note, actor))


def _act(settings: Settings, request_id: str, what: str, run: Callable[[Pipeline], ActionResult]) -> None:
    """Run one action, keep its outcome for the next run, and show the change at once."""
    try:
        result = run(reads.pipeline_for(settings))
    except (PermissionDenied, ValueError, StoreUnavailable) as error:
        st.error(f"The {what} was not done: {error}")
        return
    st.session_state[KEY_OUTCOME] = (request_id, what, result.outcome.value, result.detail)
    reads.clear_caches()
    st.rerun()


def _latest_outcome(request_id: str) -> None:
    kept = st.session_state.get(KEY_OUTCOME)
    if not kept or kept[0] != request_id:
        return
    _, what, outcome, detail = kept
    text = formatting.md_escape(f"{what}: {outcome}" + (f" ({detail})" if detail else ""))
    if outcome in {o.value for o in DONE}:
        st.success(text)
    else:
        st.warning(f"{text}. Nothing was changed.")
