"""How the pages show things: times, durations, escaped text, request tables and timelines, links to a
request's detail. Pure functions of what the store returns (the browser's time zone aside)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st
from streamdesk_processor.item import TrailAction

from backend.computed.stats import Category, categories
from backend.settings import Settings
from backend.store.models import RequestDetail, RequestSummary
from backend.store.trail import trail_of

NO_VALUE: Final = "—"
CHART_MARGIN: Final = {"t": 40, "b": 10, "l": 10, "r": 10}  # every chart's, around its title


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


# Indenting multiplies a deeply nested body's size (each level adds its indent to every line inside it):
# past this depth, or past this growth, the body is shown as stored.
PRETTY_MAX_DEPTH: Final = 32
PRETTY_MAX_GROWTH: Final = 4


def json_depth(text: str) -> int:
    """How deeply ``text`` nests arrays and objects (brackets outside strings), without parsing it: a
    body nested deeper than the parser's recursion limit must not crash the page that shows it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def pretty_body(body: str | None) -> tuple[str, str]:
    """The body as text for ``st.code`` and its language: indented JSON when it parses and stays of a
    reasonable size, else as stored."""
    if body is None:
        return "(no body stored)", "text"
    if json_depth(body) > PRETTY_MAX_DEPTH:
        return body, "json"
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return body, "text"
    pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
    if len(pretty) > PRETTY_MAX_GROWTH * len(body) + 4096:
        return body, "json"
    return pretty, "json"


def flags(summary: RequestSummary, now: int, settings: Settings) -> list[str]:
    """Categories beyond the raw status (expiring, expired, stuck), and a note on odd attributes."""
    found = categories(
        summary,
        now,
        settings.expiring_horizon_ms,
        settings.stuck_after_ms,
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
    trail = trail_of(detail.attributes)
    for entry in trail:
        if entry.at is not None:
            marks.append((trail_label(entry.action, entry.by, entry.text), entry.at))
    if s.redriven_at is not None and not any(e.action == TrailAction.RETRY for e in trail):
        marks.append(("redriven by a person", s.redriven_at))  # an older item, from before the trail
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


def trail_label(action: str, by: str, text: str) -> str:
    """How the timeline names one action by a person (the text is shown as data, never as Markdown)."""
    label = f"{action} by {by or '(unknown)'}"
    return f"{label}: {text}" if text else label


DETAIL_PARAM: Final = "id"  # /requests?id=<id> opens one request's detail


def detail_query(request_id: str) -> dict[str, str]:
    """Query parameters that open a request's detail on the requests page."""
    return {DETAIL_PARAM: request_id}


def detail_href(request_id: str) -> str:
    """A link, relative to any page of the dashboard, to the detail of one request."""
    return f"requests?{urlencode(detail_query(request_id))}"


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


def json_text(value: Any) -> str:
    """Plain Python (the item's attributes) as indented JSON text for ``st.code``."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=json_default)


def json_default(value: Any) -> Any:
    """What ``json.dumps`` cannot write itself, as text (sets sorted, bytes decoded)."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
