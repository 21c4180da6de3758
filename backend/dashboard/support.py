"""Glue shared by the dashboard's pages: settings, cached reads, the refresh and time-range controls,
formatting. No DynamoDB request is built here: reads go through :class:`backend.requests_dal.RequestStore`.

Caching: every read is an ``st.cache_data`` entry keyed on the settings' fingerprint and the call's
arguments (never on the browser session), so every browser watching the same stack shares one read per
second at most. ``now`` is rounded down to the second before it becomes a cache key, and the cache's time to
live is one second, the floor of the refresh interval: a cached answer is never older than one refresh.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st
from pydantic import ValidationError
from streamdesk_processor.item import Status

from backend.computed.overview import Overview, load_overview
from backend.computed.stats import Category, categories
from backend.settings import Settings, load_settings
from backend.store.models import Page, RequestDetail, RequestFilter, RequestSummary
from backend.store.reader import RequestStore

# ------------------------------------------------------------------------------------- session keys
# Sidebar widgets live in the entry script (dashboard.py), so Streamlit keeps their state across pages.
KEY_PAUSED: Final = "sd_refresh_paused"
KEY_INTERVAL: Final = "sd_refresh_interval"
# Requests page.
KEY_TOKENS: Final = "sd_requests_tokens"  # stack of page tokens; the last one is the page shown
KEY_FILTER_SIGNATURE: Final = "sd_requests_filter_signature"  # a new filter starts again at page 1
KEY_ANCHOR: Final = "sd_requests_anchor"  # the moment page 1 was read at, kept while paging on
KEY_SELECTED: Final = "sd_requests_selected"  # id of the request whose detail is open below the list
KEY_TABLE: Final = "sd_requests_table"  # the st.dataframe's selection state
# Submit page.
KEY_BODY: Final = "sd_submit_body"
KEY_EXAMPLE: Final = "sd_submit_example"
KEY_LAST_SUBMIT: Final = "sd_submit_last"
KEY_SENT: Final = "sd_submit_sent"  # what this browser session sent, newest first
KEY_FOLLOW_DONE: Final = "sd_submit_follow_done"  # ids seen in a final state: no more polling

# ------------------------------------------------------------------------------------ constants
CACHE_TTL_SECONDS: Final = 1.0  # = the refresh floor, so a cached read is never older than one refresh
REFRESH_FLOOR_SECONDS: Final = 1.0
FOLLOW_POLL_SECONDS: Final = 1.0  # the submit page polls GET /requests/{id} at the floor
# The requests list's default: open requests (pending, processing, failed) of any age, since the state
# index finds them wherever they are; other states from the last 24 hours (requests_dal.DEFAULT_RANGE_MS).
ANY_TIME: Final = "Default"
ANY_TIME_HELP: Final = (
    "Pending, processing and failed requests of any age; other states from the last 24 hours."
)
CUSTOM: Final = "Custom"
RANGE_CHOICES: Final[dict[str, int]] = {
    "15 minutes": 15 * 60_000,
    "1 hour": 3_600_000,
    "1 day": 86_400_000,
    "1 week": 7 * 86_400_000,
}
UNKNOWN_STATE: Final = "UNKNOWN"  # RequestFilter's name for a missing or odd status
STATE_CHOICES: Final[tuple[str, ...]] = (*(s.value for s in Status), UNKNOWN_STATE)
NO_VALUE: Final = "—"


def now_ms() -> int:
    """Now in epoch milliseconds, rounded down to the second (a stable cache key for a second)."""
    return int(time.time()) * 1000


# ------------------------------------------------------------------------------------ settings
def fingerprint(settings: Settings) -> str:
    """A short stable digest of every setting: the part of each cache key that says "which stack"."""
    return hashlib.sha256(settings.model_dump_json().encode("utf-8")).hexdigest()[:16]


@st.cache_resource(show_spinner="Reading the deployed stack…", ttl=600)
def _resolved_for_stack(key: str, _settings: Settings) -> Settings:
    # Imported only when a stack is named: the local stack needs neither CloudFormation nor its errors.
    from backend.deployed.stack import resolve_settings

    return resolve_settings(_settings)


def app_settings() -> Settings:
    """The dashboard's settings (environment, secrets, defaults; a deployed stack's outputs when
    ``STREAMDESK_STACK`` is set). Shows a plain error and stops the page when they cannot be had."""
    try:
        settings = load_settings()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        st.error(f"The Streamdesk settings are invalid ({problems}). Fix the STREAMDESK_* variables.")
        st.stop()
    if settings.stack:
        try:
            settings = _resolved_for_stack(fingerprint(settings), settings)
        except Exception as error:  # StackError, or boto3 trouble; both are for a person
            st.error(f"Cannot read the deployed stack {settings.stack!r}: {error}")
            st.stop()
    return settings


# ------------------------------------------------------------------------------------ cached reads
@st.cache_resource(show_spinner=False)
def _store_for(key: str, _settings: Settings) -> RequestStore:
    # One store (one boto3 client, which is thread-safe) per stack for the whole server.
    return RequestStore(_settings)


def store_for(settings: Settings) -> RequestStore:
    return _store_for(fingerprint(settings), settings)


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=64, show_spinner=False)
def _overview(key: str, since_ms: int, until_ms: int, now: int, _settings: Settings) -> Overview:
    return load_overview(store_for(_settings), _settings, since_ms, until_ms, now)


def cached_overview(settings: Settings, since_ms: int, until_ms: int, now: int) -> Overview:
    """The overview for ``[since_ms, until_ms]`` at ``now`` (may raise StoreUnavailable)."""
    return _overview(fingerprint(settings), since_ms, until_ms, now, settings)


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=256, show_spinner=False)
def _page(
    key: str,
    states: tuple[str, ...],
    since_ms: int | None,
    until_ms: int | None,
    request_id: str | None,
    text: str | None,
    page_size: int,
    token: str | None,
    _settings: Settings,
) -> Page:
    flt = RequestFilter(frozenset(states), since_ms, until_ms, request_id, text)
    return store_for(_settings).list_requests(flt, page_size, token)


def cached_page(settings: Settings, flt: RequestFilter, page_size: int, token: str | None) -> Page:
    """One page of the list (may raise StoreUnavailable)."""
    return _page(
        fingerprint(settings),
        tuple(sorted(flt.states)),  # plain values: the cache key must not depend on set order
        flt.since_ms,
        flt.until_ms,
        flt.request_id,
        flt.text,
        page_size,
        token,
        settings,
    )


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=128, show_spinner=False)
def _detail(key: str, request_id: str, _settings: Settings) -> RequestDetail | None:
    return store_for(_settings).get(request_id)


def cached_detail(settings: Settings, request_id: str) -> RequestDetail | None:
    """One request in full, or None if there is no such id (may raise StoreUnavailable)."""
    return _detail(fingerprint(settings), request_id, settings)


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=16, show_spinner=False)
def _table_is_empty(key: str, _settings: Settings) -> bool:
    return not store_for(_settings).has_any()


def cached_table_is_empty(settings: Settings) -> bool:
    """True when the table holds no request at all (may raise StoreUnavailable)."""
    return _table_is_empty(fingerprint(settings), settings)


def clear_caches() -> None:
    """Forget every cached read (the "Refresh now" button): the next read goes to DynamoDB."""
    for cached in (_overview, _page, _detail, _table_is_empty):
        cached.clear()


# ------------------------------------------------------------------------------------ sidebar
def render_sidebar(settings: Settings) -> None:
    """Where the dashboard points, and the refresh control. Rendered by the entry script only, so that the
    widgets keep their state when the user moves between pages."""
    with st.sidebar:
        st.subheader("Connected to")
        if settings.stack:
            st.text(f"Stack: {settings.stack} ({settings.region})")
        st.text(f"Table: {settings.table}")
        st.text(
            f"DynamoDB: {settings.dynamodb_url if settings.is_local or settings.dynamodb_endpoint else 'AWS'}"
        )
        st.text(f"API: {settings.api_base_url}")
        st.subheader("Refresh")
        st.toggle("Pause auto-refresh", key=KEY_PAUSED)
        st.number_input(
            "Refresh every (seconds)",
            min_value=REFRESH_FLOOR_SECONDS,
            max_value=3600.0,
            value=max(REFRESH_FLOOR_SECONDS, float(settings.refresh_seconds)),
            step=1.0,
            format="%.0f",
            key=KEY_INTERVAL,
        )
        st.button("Refresh now", on_click=clear_caches, help="Read everything again from DynamoDB.")


def refresh_interval(settings: Settings) -> float | None:
    """Seconds between automatic refreshes, or None while paused (what ``st.fragment(run_every=)`` takes)."""
    if st.session_state.get(KEY_PAUSED, False):
        return None
    chosen = st.session_state.get(KEY_INTERVAL, settings.refresh_seconds)
    return max(REFRESH_FLOOR_SECONDS, float(chosen))


# ------------------------------------------------------------------------------------ time range
@dataclass(frozen=True)
class TimeRange:
    """A choice of the time-range control. ``span_ms`` is set for the relative choices."""

    label: str
    span_ms: int | None = None
    since_ms: int | None = None  # custom ranges only
    until_ms: int | None = None

    def bounds(self, now: int) -> tuple[int | None, int | None]:
        """``(since_ms, until_ms)`` at ``now``; None means unbounded on that side."""
        if self.span_ms is not None:
            return now - self.span_ms, now
        return self.since_ms, self.until_ms


def display_zone() -> ZoneInfo:
    """The browser's time zone when Streamlit knows it, else UTC."""
    name: str | None = None
    try:
        name = st.context.timezone
    except Exception:  # no browser (tests, bare mode): fall back to UTC
        name = None
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _combine(day: date, clock: dtime, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, clock, tzinfo=zone).timestamp() * 1000)


def time_range_control(key: str, *, allow_any: bool, default: str) -> TimeRange:
    """Radio of 15 minutes / hour / day / week / custom (and the list's default if ``allow_any``)."""
    options = ([ANY_TIME] if allow_any else []) + [*RANGE_CHOICES, CUSTOM]
    label = st.radio(
        "Time range",
        options,
        index=options.index(default),
        horizontal=True,
        key=f"{key}_range",
        help=ANY_TIME_HELP if allow_any else None,
    )
    if label == ANY_TIME:
        return TimeRange(label)
    if label != CUSTOM:
        return TimeRange(label, span_ms=RANGE_CHOICES[label])
    zone = display_zone()
    today = datetime.now(zone)
    columns = st.columns(4)
    start_day = columns[0].date_input(
        "From day", value=(today - timedelta(days=1)).date(), key=f"{key}_from_d"
    )
    start_clock = columns[1].time_input("From time", value=dtime(0, 0), key=f"{key}_from_t", step=60)
    end_day = columns[2].date_input("To day", value=today.date(), key=f"{key}_to_d")
    end_clock = columns[3].time_input("To time", value=dtime(23, 59), key=f"{key}_to_t", step=60)
    since = _combine(start_day, start_clock, zone)
    until = _combine(end_day, end_clock, zone) + 59_999  # the whole last minute
    if until <= since:
        st.warning("The custom range ends before it starts; showing the day before its end instead.")
        since = until - 86_400_000
    return TimeRange(CUSTOM, since_ms=since, until_ms=until)


# ------------------------------------------------------------------------------------ formatting
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md_escape(text: object) -> str:
    """``text`` made literal for Streamlit's Markdown (labels, captions, messages).

    Request bodies, error messages, ids from a URL and names from a sign-in provider are data: unescaped,
    ``[verify your card](https://...)`` would render as a link inside the dashboard's own words, and
    ``![](...)`` as an image fetched from anywhere. The colon is escaped too, so no URL is auto-linked.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def fmt_time(ms: int | None, *, precise: bool = False, zone: ZoneInfo | None = None) -> str:
    """Epoch ms as local wall-clock time (milliseconds when ``precise``)."""
    if ms is None:
        return NO_VALUE
    moment = datetime.fromtimestamp(ms / 1000, tz=zone or ZoneInfo("UTC"))
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if precise:
        text += f".{ms % 1000:03d}"
    return f"{text} {moment.tzname()}"


def fmt_duration(ms: float | None) -> str:
    """A duration for people: 850 ms, 1.2 s, 3 min 5 s, 2 h 3 min, 1 d 4 h (a zero second part left out)."""
    if ms is None or pd.isna(ms):
        return NO_VALUE
    sign = "-" if ms < 0 else ""
    ms = abs(float(ms))
    if ms < 1000:
        return f"{sign}{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes} min" + (f" {sec} s" if sec else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d" + (f" {hours} h" if hours else "")


def fmt_expiry(ttl_s: int | None, now: int) -> str:
    """Time left before DynamoDB's TTL may delete the item (short enough for a metric)."""
    if ttl_s is None:
        return "never"
    left = ttl_s * 1000 - now
    if left <= 0:
        return f"expired {fmt_duration(-left)} ago"
    return f"in {fmt_duration(left)}"


def pretty_body(body: str | None) -> tuple[str, str]:
    """The body as text for ``st.code`` and its language: indented JSON when it parses, else as stored."""
    if body is None:
        return "(no body stored)", "text"
    try:
        parsed = json.loads(body)
    except ValueError:
        return body, "text"
    return json.dumps(parsed, indent=2, ensure_ascii=False), "json"


def flags(summary: RequestSummary, now: int, settings: Settings) -> list[str]:
    """Categories beyond the raw status (expiring, expired, stuck), and a note on odd attributes."""
    found = categories(
        summary,
        now,
        int(settings.expiring_horizon_hours * 3_600_000),
        int(settings.stuck_after_seconds * 1000),
    )
    marks = [c.value.lower() for c in (Category.EXPIRING, Category.EXPIRED, Category.STUCK) if c in found]
    if summary.malformed:
        marks.append("odd: " + ", ".join(summary.malformed))
    return marks


def _span(start: int | None, end: int | None) -> int | None:
    return end - start if start is not None and end is not None else None


def summaries_frame(items: Iterable[RequestSummary], now: int, settings: Settings) -> pd.DataFrame:
    """The list's table: one row per request, text only (what a person reads, never the body)."""
    zone = display_zone()
    rows = [
        {
            "id": s.id,
            "status": s.status or "(missing)",
            "flags": ", ".join(flags(s, now, settings)),
            "created": fmt_time(s.created_at, zone=zone),
            "queue wait": fmt_duration(_span(s.created_at, s.started_at)),
            "processing": fmt_duration(_span(s.started_at, s.finished_at)),
            "attempts": s.attempts,
            "expires": fmt_expiry(s.ttl, now) if s.ttl is not None else "",
            "error": " ".join(part for part in (s.error_type, s.error_message) if part) or "",
        }
        for s in items
    ]
    columns = ["id", "status", "flags", "created", "queue wait", "processing", "attempts", "expires", "error"]
    return pd.DataFrame(rows, columns=columns)


def timeline_frame(detail: RequestDetail, zone: ZoneInfo | None = None) -> pd.DataFrame:
    """The stages of one request in time order, each with its duration since the previous stage and since
    acceptance. Stages without a timestamp are left out."""
    s = detail.summary
    marks: list[tuple[str, int]] = []
    if s.created_at is not None:
        marks.append(("accepted by the API", s.created_at))
    if s.redriven_at is not None:
        marks.append(("redriven by a person", s.redriven_at))
    if s.started_at is not None:
        marks.append((f"processing started (attempt {s.attempts})", s.started_at))
    for name, step in detail.steps.items():
        at = step.get("at") if isinstance(step, dict) else None
        if isinstance(at, int | float):
            attempt = step.get("attempt")
            suffix = f" (attempt {attempt})" if attempt is not None else ""
            marks.append((f"step {name} done{suffix}", int(at)))
    if s.finished_at is not None:
        marks.append((f"finished: {s.status or '(missing status)'}", s.finished_at))
    marks.sort(key=lambda mark: mark[1])
    rows = []
    previous: int | None = None
    for stage, at in marks:
        rows.append(
            {
                "stage": stage,
                "at": fmt_time(at, precise=True, zone=zone),
                "since previous": fmt_duration(_span(previous, at)) if previous is not None else "",
                "since accepted": fmt_duration(_span(s.created_at, at)),
            }
        )
        previous = at
    return pd.DataFrame(rows, columns=["stage", "at", "since previous", "since accepted"])


def detail_query(request_id: str) -> dict[str, str]:
    """Query parameters that open a request's detail on the requests page."""
    return {"id": request_id}


def detail_href(request_id: str) -> str:
    """A link, relative to any page of the dashboard, to the detail of one request."""
    return f"requests?{urlencode(detail_query(request_id))}"


# ------------------------------------------------------------------------------------ submit
def parse_body(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(object, None)`` when ``text`` is a JSON object, else ``(None, what is wrong)``."""
    if not text.strip():
        return None, 'The body is empty: write a JSON object, for example {"order": 42}.'
    try:
        value = json.loads(text)
    except ValueError as error:
        return None, f"The body is not valid JSON: {error}."
    if not isinstance(value, dict):
        return None, f"The body must be a JSON object ({{...}}), not a {type(value).__name__}."
    return value, None


# ------------------------------------------------------------------------------------ export
EXPORT_COLUMNS: Final = (
    "id",
    "status",
    "createdAt",
    "startedAt",
    "finishedAt",
    "updatedAt",
    "attempts",
    "ttl",
    "errorType",
    "errorMessage",
    "errorStep",
    "steps",
    "result",
    "request",
)


def _export_row(d: RequestDetail) -> dict[str, Any]:
    s = d.summary
    return {
        "id": s.id,
        "status": s.status,
        "createdAt": s.created_at,
        "startedAt": s.started_at,
        "finishedAt": s.finished_at,
        "updatedAt": s.updated_at,
        "attempts": s.attempts,
        "ttl": s.ttl,
        "errorType": s.error_type,
        "errorMessage": s.error_message,
        "errorStep": s.error_step,
        "steps": ",".join(d.steps),
        "result": json.dumps(d.result, ensure_ascii=False, sort_keys=True) if d.result else "",
        "request": d.body,
    }


def export_csv(details: Iterable[RequestDetail]) -> bytes:
    """CSV, one row per request, the columns of :data:`EXPORT_COLUMNS` (body included)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(EXPORT_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for detail in details:
        writer.writerow(_export_row(detail))
    return buffer.getvalue().encode("utf-8")


def export_json(details: Iterable[RequestDetail]) -> bytes:
    """A JSON array: every attribute of every request, as stored."""
    items = [detail.attributes for detail in details]
    return json.dumps(items, ensure_ascii=False, indent=2, default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def deferred(make: Callable[[], bytes], what: str) -> Callable[[], bytes]:
    """Wraps an export for ``st.download_button(data=...)``: it runs only when clicked, on another
    thread where nothing can be displayed, so a failure becomes the file's content."""

    def run() -> bytes:
        try:
            return make()
        except Exception as error:  # the only place left to tell the user
            return f"The {what} export failed: {error}\n".encode()

    return run


def json_text(value: Any) -> str:
    """Plain Python (the item's attributes) as indented JSON text for ``st.code``."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=_json_default)
