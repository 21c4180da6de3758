"""The dashboard's controls: the sidebar (where it points, the refresh control), the time-range control,
and the session-state keys of every widget and page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Final
from zoneinfo import ZoneInfo

import streamlit as st
from streamdesk_processor.item import MS_PER_DAY, Status

from backend.clock import HOUR_MS
from backend.dashboard import reads
from backend.dashboard.formatting import display_zone
from backend.settings import Settings
from backend.store.models import UNKNOWN_STATE

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
KEY_RESUBMIT_FROM: Final = "sd_submit_resubmit_from"  # the request whose body the submit form holds a copy of

# ------------------------------------------------------------------------------------ constants
REFRESH_FLOOR_SECONDS: Final = 1.0
FOLLOW_POLL_SECONDS: Final = 1.0  # the submit page polls GET /requests/{id} at the floor
# The requests list's default: open requests (pending, processing, failed) of any age, since the state
# index finds them wherever they are; other states from the last 24 hours (models.DEFAULT_RANGE_MS).
ANY_TIME: Final = "Default"
ANY_TIME_HELP: Final = (
    "Pending, processing and failed requests of any age; other states from the last 24 hours."
)
CUSTOM: Final = "Custom"
RANGE_CHOICES: Final[dict[str, int]] = {
    "15 minutes": 15 * 60_000,
    "1 hour": HOUR_MS,
    "1 day": MS_PER_DAY,
    "1 week": 7 * MS_PER_DAY,
}
# Only for pages that read rollups (their cost does not grow with the range's traffic).
LONG_RANGE_CHOICES: Final[dict[str, int]] = {"30 days": 30 * MS_PER_DAY}
STATE_CHOICES: Final[tuple[str, ...]] = (*(s.value for s in Status), UNKNOWN_STATE)


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
        st.button("Refresh now", on_click=reads.clear_caches, help="Read everything again from DynamoDB.")


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


def _combine(day: date, clock: dtime, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, clock, tzinfo=zone).timestamp() * 1000)


def time_range_control(key: str, *, allow_any: bool, default: str, long_ranges: bool = False) -> TimeRange:
    """Radio of 15 minutes / hour / day / week (/ 30 days if ``long_ranges``) / custom (and the list's
    default if ``allow_any``)."""
    choices = RANGE_CHOICES | (LONG_RANGE_CHOICES if long_ranges else {})
    options = ([ANY_TIME] if allow_any else []) + [*choices, CUSTOM]
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
        return TimeRange(label, span_ms=choices[label])
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
        since = until - MS_PER_DAY
    return TimeRange(CUSTOM, since_ms=since, until_ms=until)
