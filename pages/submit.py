"""Submit: send a request through the HTTP API (with the key, like any client) and follow it live.

The page never writes to the table: a request sent here takes the same path as every other one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from backend import operations
from backend.api_client import ApiClient, ApiUnreachable, SubmitResult
from backend.dashboard import controls, formatting, reads, sign_in
from backend.roles import PermissionDenied
from backend.samples import SAMPLES
from backend.store.calls import StoreUnavailable


@dataclass(frozen=True)
class SendOutcome:
    """What happened to the last send: refused before sending, the API out of reach, or its answer."""

    refused: str | None = None
    unreachable: str | None = None
    answer: SubmitResult | None = None
    resubmitted_from: str | None = None  # the original, when this send was "resubmit as new"
    link_problem: str | None = None  # why the two could not be linked (the new request is stored anyway)


@dataclass(frozen=True)
class Sent:
    """A request this browser session sent."""

    id: str
    sent_at: int  # epoch ms
    example: str
    status_code: int
    elapsed_ms: float


settings = reads.app_settings()
MAX_SENT_SHOWN = 50


def _load_example() -> None:
    name = st.session_state.get(controls.KEY_EXAMPLE)
    if name in SAMPLES:
        st.session_state[controls.KEY_BODY] = json.dumps(SAMPLES[name], indent=2)


def _send(text: str) -> None:
    """Validates and sends; the outcome is kept in the session so it survives the next rerun."""
    _, problem = formatting.parse_body(text)
    if problem:
        st.session_state[controls.KEY_LAST_SUBMIT] = SendOutcome(refused=problem)
        return
    try:
        # The text as typed: the API stores the body exactly as received.
        with ApiClient.of(settings) as client:
            result = operations.submit(client, text, sign_in.page_actor(settings))
    except PermissionDenied as error:  # the backend's word, whatever the page showed
        st.session_state[controls.KEY_LAST_SUBMIT] = SendOutcome(refused=str(error))
        return
    except ApiUnreachable as error:
        st.session_state[controls.KEY_LAST_SUBMIT] = SendOutcome(unreachable=str(error))
        return
    st.session_state[controls.KEY_LAST_SUBMIT] = SendOutcome(answer=result)
    original = st.session_state.get(controls.KEY_RESUBMIT_FROM)
    if result.accepted and result.id and original:
        st.session_state[controls.KEY_LAST_SUBMIT] = _linked(original, result)
    if result.id and 200 <= result.status_code < 300:
        sent: list[Sent] = st.session_state.setdefault(controls.KEY_SENT, [])
        example = st.session_state.get(controls.KEY_EXAMPLE) or "(typed)"
        sent.insert(0, Sent(result.id, reads.now_ms(), example, result.status_code, result.elapsed_ms))
        del sent[MAX_SENT_SHOWN:]


def _linked(original: str, result: SubmitResult) -> SendOutcome:
    """Link an accepted resubmission to its original, both ways; the form is a plain one again after."""
    assert result.id is not None
    st.session_state.pop(controls.KEY_RESUBMIT_FROM, None)
    try:
        linked = reads.pipeline_for(settings).link_resubmission(
            original, result.id, sign_in.page_actor(settings)
        )
    except (PermissionDenied, StoreUnavailable) as error:
        return SendOutcome(answer=result, resubmitted_from=original, link_problem=str(error))
    problem = None if linked.original else f"the original {original} no longer exists"
    return SendOutcome(answer=result, resubmitted_from=original, link_problem=problem)


def _resubmit_banner() -> None:
    original = st.session_state.get(controls.KEY_RESUBMIT_FROM)
    if not original:
        return
    st.info(
        f"Resubmitting {formatting.md_escape(original)} as a new request: the body below is a copy of its "
        "body. Sending creates a new request with a new id, linked to the original in both details."
    )
    if st.button("Start from a blank form instead", key="submit_resubmit_drop"):
        st.session_state.pop(controls.KEY_RESUBMIT_FROM, None)
        st.session_state.pop(controls.KEY_BODY, None)
        st.rerun()


def _show_outcome(outcome: SendOutcome) -> str | None:
    """Shows what happened to the last send; returns the id to follow, if any."""
    if outcome.refused is not None:
        st.error(outcome.refused)
        return None
    if outcome.unreachable is not None or outcome.answer is None:
        st.error(f"The API at {settings.api_base_url} cannot be reached: {outcome.unreachable}")
        return None
    answer = outcome.answer
    code = answer.status_code
    cols = st.columns(3)
    cols[0].metric("HTTP status", code)
    cols[1].metric("Acknowledged in", formatting.fmt_duration(answer.elapsed_ms))
    cols[2].metric("Request id", answer.id or formatting.NO_VALUE)
    if code == 403:
        st.error("The API refused the key (403 Forbidden): check STREAMDESK_API_KEY.")
        return None
    if not 200 <= code < 300 or not answer.id:
        st.warning(f"The API did not accept the request (HTTP {code}).")
        if answer.message:
            st.code(str(answer.message), language="text")
        return None
    st.success("Accepted: the request is stored and waits for processing.")
    if outcome.resubmitted_from:
        original = formatting.md_escape(outcome.resubmitted_from)
        if outcome.link_problem:
            st.warning(
                f"Resubmitted from {original}, but not linked: {formatting.md_escape(outcome.link_problem)}"
            )
        else:
            st.caption(f"Resubmitted from {original}; both details link to each other.")
    return str(answer.id)


def _follow(request_id: str) -> None:
    """Polls GET /requests/{id} until the request is finished (then stops polling)."""
    done: set[str] = st.session_state.setdefault(controls.KEY_FOLLOW_DONE, set())
    polling = request_id not in done and controls.refresh_interval(settings) is not None
    interval = controls.FOLLOW_POLL_SECONDS if polling else None

    @st.fragment(run_every=interval)
    def live_status() -> None:
        st.subheader("Live status")
        try:
            with ApiClient.of(settings) as client:
                answer = client.get(request_id)
        except ApiUnreachable as error:
            st.error(f"The API at {settings.api_base_url} cannot be reached: {error}")
            return
        if answer.status_code == 403:
            st.error("The API refused the key (403 Forbidden): check STREAMDESK_API_KEY.")
            return
        if answer.status_code == 404:
            st.warning(f"No request with id {formatting.md_escape(request_id)} (yet).")
            return
        if answer.status_code != 200:
            st.warning(f"GET /requests/{request_id} answered HTTP {answer.status_code}.")
            if answer.message:
                st.code(str(answer.message), language="text")
            return
        request = answer.request
        if request is None:
            st.warning(f"GET /requests/{request_id} answered no request.")
            return
        cols = st.columns(4)
        cols[0].metric("Status", request.status or "(missing)")
        cols[1].metric("Attempts", str(request.attempts))
        cols[2].metric("Queue wait", formatting.fmt_duration(request.queue_wait_ms))
        cols[3].metric("End to end", formatting.fmt_duration(request.end_to_end_ms))
        if request.error:
            st.caption("Error")
            st.code(formatting.json_text(request.error), language="json", wrap_lines=True)
        if request.result:
            st.caption("Result")
            st.code(formatting.json_text(request.result), language="json", wrap_lines=True)
        finished = request.finished
        if finished:
            done.add(request_id)
        if polling and not finished:
            st.caption(f"Checking again every {controls.FOLLOW_POLL_SECONDS:g} s until it finishes…")
        elif not polling and not finished:
            st.caption("Auto-refresh is paused: use Refresh now in the sidebar to check again.")
        if finished and polling:
            # Run the page again so the fragment is defined without run_every: polling stops.
            st.rerun(scope="app")

    live_status()
    st.page_link(
        "pages/requests.py",
        label="Open its detail",
        icon=":material/open_in_new:",
        query_params=formatting.detail_query(request_id),
    )


def _sent_list() -> None:
    sent: list[Sent] = st.session_state.get(controls.KEY_SENT, [])
    st.subheader("Sent from this browser")
    if not sent:
        st.caption("Nothing sent yet in this session.")
        return
    zone = formatting.display_zone()
    table = pd.DataFrame(
        [
            {
                "id": entry.id,
                "sent": formatting.fmt_time(entry.sent_at, zone=zone),
                "example": entry.example,
                "HTTP": entry.status_code,
                "acknowledged in": formatting.fmt_duration(entry.elapsed_ms),
                # Relative to this page's URL, so it also works under a base path or a proxy.
                "detail": formatting.detail_href(entry.id),
            }
            for entry in sent
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        key="sent_table",
        column_config={"detail": st.column_config.LinkColumn("detail", display_text="open detail")},
    )


# ------------------------------------------------------------------------------------ page
st.title("Submit a request")
st.caption(f"Sent with the API key to `PUT {settings.api_base_url}/requests`, like any client.")
if not sign_in.page_actor(settings).may_change:  # roles (issue 4): sending is for operators
    st.info("You are a viewer: sending requests is for operators.")
    st.stop()
_resubmit_banner()
st.selectbox(
    "Start from an example",
    list(SAMPLES),
    index=None,
    placeholder="choose an example",
    key=controls.KEY_EXAMPLE,
    on_change=_load_example,
)
if controls.KEY_BODY not in st.session_state:
    st.session_state[controls.KEY_BODY] = json.dumps(next(iter(SAMPLES.values())), indent=2)
body = st.text_area("Body (a JSON object)", key=controls.KEY_BODY, height=220)
if st.button("Send", type="primary", key="submit_send"):
    _send(body)

last = st.session_state.get(controls.KEY_LAST_SUBMIT)
follow_id = _show_outcome(last) if last else None
if follow_id:
    _follow(follow_id)
_sent_list()
