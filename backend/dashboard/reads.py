"""The dashboard's reads, under one cache policy: every page reads through here, and "Refresh now" clears
it all (:func:`clear_caches`).

The policy: every read is an ``st.cache_data`` entry keyed on the settings' fingerprint and the call's
arguments (never on the browser session), so every browser watching the same stack shares one read per
second at most. ``now`` is rounded down to the second before it becomes a cache key, and the time to live
is one second, the floor of the refresh interval: a cached answer is never older than one refresh. A
deployed stack's own services (the event source mapping, CloudWatch, the on-failure queue) are read at most
every :data:`DEPLOYED_READ_SECONDS`. Connections (the store, the settings of a deployed stack) are
resources, built once per stack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import streamlit as st
from pydantic import ValidationError

from backend import clock
from backend.computed.failure_view import FailuresView
from backend.computed.health import HealthReport, load_health
from backend.computed.overview import Overview, load_overview
from backend.computed.slow_lane_health import SlowLaneHealth, local_slow_lane
from backend.computed.stuck import StuckRequest, TriggerHealth
from backend.operations import Pipeline
from backend.settings import Settings, load_settings
from backend.store.models import Page, RequestDetail, RequestFilter, RequestSummary
from backend.store.reader import RequestStore

CACHE_TTL_SECONDS = 1.0  # = the refresh floor, so a cached read is never older than one refresh
# CloudWatch has one point a minute, and SQS can only be peeked by receiving (each receive counts towards
# the queue's redrive policy): a deployed stack's services are read at most this often.
DEPLOYED_READ_SECONDS = 30.0


def now_ms() -> int:
    """Now in epoch milliseconds, rounded down to the second (a stable cache key for a second)."""
    return clock.now_ms() // 1000 * 1000


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


def pipeline_for(settings: Settings) -> Pipeline:
    """The store and the actions on the settings' table, over the one cached store (one boto3 client)."""
    return Pipeline.over(store_for(settings))


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


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=16, show_spinner=False)
def _failures_view(key: str, since_ms: int, until_ms: int, _settings: Settings) -> FailuresView:
    return pipeline_for(_settings).failures_view(since_ms, until_ms)


def cached_failures_view(settings: Settings, since_ms: int, until_ms: int) -> FailuresView:
    """The open failures by group (bounded) and each group's failures in [since, until] from the rollups
    (may raise StoreUnavailable for the requests table; the rollups' trouble is in the view)."""
    return _failures_view(fingerprint(settings), since_ms, until_ms, settings)


def failed_ids_of_group(settings: Settings, group_key: str) -> list[str]:
    """Every open failure of one group, for a retry or resolution of the whole group: read on the click,
    never cached (an action may read items; a count may not)."""
    return pipeline_for(settings).failed_ids(group_key)


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=16, show_spinner=False)
def _resolved(key: str, _settings: Settings) -> list[RequestSummary]:
    return pipeline_for(_settings).resolved()


def cached_resolved(settings: Settings) -> list[RequestSummary]:
    """Every failure closed without a retry and not deleted yet, newest first (the state index)."""
    return _resolved(fingerprint(settings), settings)


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=64, show_spinner=False)
def _statuses(key: str, request_ids: tuple[str, ...], _settings: Settings) -> dict[str, str]:
    return store_for(_settings).statuses(request_ids)


def cached_statuses(settings: Settings, request_ids: list[str]) -> dict[str, str]:
    """The current status of each request (absent: deleted); may raise StoreUnavailable."""
    return _statuses(fingerprint(settings), tuple(request_ids), settings) if request_ids else {}


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=16, show_spinner=False)
def _local_health(key: str, now: int, _settings: Settings) -> HealthReport:
    return load_health(_settings, store_for(_settings), now)


@st.cache_data(ttl=DEPLOYED_READ_SECONDS, max_entries=4, show_spinner="Reading the stack…")
def _deployed_health(key: str, _settings: Settings) -> HealthReport:
    return load_health(_settings, store_for(_settings), now_ms())


def cached_health(settings: Settings, now: int) -> HealthReport:
    """The Health page's report (never raises: what cannot be read is in its ``errors``)."""
    key = fingerprint(settings)
    return _deployed_health(key, settings) if settings.stack else _local_health(key, now, settings)


@st.cache_data(ttl=DEPLOYED_READ_SECONDS, max_entries=4, show_spinner=False)
def _deployed_trigger_health(key: str, _settings: Settings) -> TriggerHealth:
    from backend.deployed.health import trigger_health  # a deployed stack only: boto3 for AWS services

    return trigger_health(_settings)


def cached_trigger_health(settings: Settings) -> TriggerHealth:
    """The trigger's health: a deployed stack's mapping and metrics (read at most every
    :data:`DEPLOYED_READ_SECONDS`), or the local trigger's state file (read every time: it is a file)."""
    if settings.stack:
        return _deployed_trigger_health(fingerprint(settings), settings)
    return pipeline_for(settings).trigger_health()


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=16, show_spinner=False)
def _stuck(key: str, now: int, _settings: Settings) -> list[StuckRequest]:
    return pipeline_for(_settings).stuck(trigger=cached_trigger_health(_settings))


def cached_stuck(settings: Settings, now: int) -> list[StuckRequest]:
    """The stuck requests and why (may raise StoreUnavailable)."""
    return _stuck(fingerprint(settings), now, settings)


def export_details(settings: Settings, flt: RequestFilter) -> Iterator[RequestDetail]:
    """Every request ``flt`` matches, in full, for an export: never cached (it is read once, on a click)."""
    return store_for(settings).export(flt)


@st.cache_resource(show_spinner=False)
def _sqs_for(key: str, _settings: Settings) -> Any:
    """One SQS client per stack (the local twin, or the deployed stack's region)."""
    if _settings.stack:
        from backend.deployed.stack import session_for

        return session_for(_settings).client("sqs")
    from backend.local.sqs_event_source import sqs_client

    return sqs_client(_settings, attempts=1, timeout=2)  # the page says the twin is down, it does not wait


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=16, show_spinner=False)
def _local_slow_lane(key: str, now: int, _settings: Settings) -> SlowLaneHealth:
    return local_slow_lane(_settings, _sqs_for(key, _settings), now)


@st.cache_data(ttl=DEPLOYED_READ_SECONDS, max_entries=4, show_spinner=False)
def _deployed_slow_lane(key: str, _settings: Settings) -> SlowLaneHealth:
    # A deployed stack's queues and CloudWatch: read at most every DEPLOYED_READ_SECONDS, whatever the
    # number of browsers and refreshes (as the other reads of a deployed stack's services).
    from backend.deployed.slow_lane import deployed_slow_lane
    from backend.deployed.stack import session_for

    session = session_for(_settings)
    return deployed_slow_lane(
        _settings.stack or "",
        session.client("cloudformation"),
        _sqs_for(key, _settings),
        session.client("cloudwatch"),
    )


def cached_slow_lane(settings: Settings, now: int) -> SlowLaneHealth:
    """The slow lane's queues and (locally) its event source (never raises: problems are in ``errors``)."""
    key = fingerprint(settings)
    return _deployed_slow_lane(key, settings) if settings.stack else _local_slow_lane(key, now, settings)


def clear_caches() -> None:
    """Forget every cached read (the "Refresh now" button, and after a change): the next read goes to
    DynamoDB and to the deployed stack."""
    for cached in (
        _overview,
        _page,
        _detail,
        _table_is_empty,
        _failures_view,
        _resolved,
        _statuses,
        _local_health,
        _deployed_health,
        _deployed_trigger_health,
        _stuck,
        _local_slow_lane,
        _deployed_slow_lane,
    ):
        cached.clear()
