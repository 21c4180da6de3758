"""Overview: how many requests are in each state, how fast they flow, how long they take."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from backend.computed.overview import Overview
from backend.computed.stats import latency_over_time
from backend.dashboard import controls, formatting, notices, reads, sign_in
from backend.store.calls import StoreUnavailable

settings = reads.app_settings()
sign_in.page_actor(settings)  # everyone signed in may look; see sign_in.page_actor for why pages ask
st.title("Overview")
time_range = controls.time_range_control("overview", allow_any=False, default="1 hour")


def _metrics(overview: Overview) -> None:
    live, counts = overview.live, overview.counts
    st.subheader("Right now (every open request, whatever its age)")
    now_cols = st.columns(5)
    now_cols[0].metric("Pending now", live.pending)
    now_cols[1].metric("Processing now", live.processing)
    now_cols[2].metric(
        "Stuck now",
        live.stuck,
        help=f"Pending or processing for over {formatting.fmt_duration(settings.stuck_after_ms)}.",
    )
    now_cols[3].metric("Failed (open)", live.failed, help="Failed requests not redriven yet.")
    now_cols[4].metric("Oldest pending", formatting.fmt_duration(live.oldest_pending_age_ms))

    st.subheader(f"Created in the selected range ({time_range.label.lower()})")
    range_cols = st.columns(8)
    range_cols[0].metric("Accepted", int(overview.throughput["accepted"].sum()))
    range_cols[1].metric("Pending", counts.pending)
    range_cols[2].metric("Processing", counts.processing)
    range_cols[3].metric("Succeeded", counts.succeeded, help="Expired requests are not counted here.")
    range_cols[4].metric("Failed", counts.failed)
    range_cols[5].metric(
        "Expiring",
        counts.expiring,
        help=f"Succeeded, deleted by TTL within {settings.expiring_horizon_hours:g} h.",
    )
    range_cols[6].metric(
        "Expired", counts.expired, help="Not live: the TTL passed, DynamoDB has not deleted them yet."
    )
    range_cols[7].metric("Stuck", counts.stuck)
    closed_cols = st.columns(8)
    closed_cols[0].metric("Cancelled", counts.cancelled, help="Withdrawn while pending.")
    closed_cols[1].metric("Resolved", counts.resolved, help="Failures closed by a person without a retry.")
    if counts.unknown or live.unknown:
        st.warning(
            f"{max(counts.unknown, live.unknown)} request(s) have a missing or unrecognised status; "
            "find them on the Requests page with the UNKNOWN state."
        )


def _throughput_chart(overview: Overview) -> go.Figure:
    frame = overview.throughput.copy()
    frame["time"] = frame["time"].dt.tz_convert(formatting.display_zone())
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    for column, colour in (("accepted", "#1f77b4"), ("succeeded", "#2ca02c"), ("failed", "#d62728")):
        figure.add_trace(go.Bar(x=frame["time"], y=frame[column], name=column, marker_color=colour))
    figure.add_trace(
        go.Scatter(
            x=frame["time"],
            y=frame["failure_rate"] * 100,
            name="failure rate %",
            mode="lines+markers",
            line={"color": "#ff7f0e"},
            connectgaps=False,
        ),
        secondary_y=True,
    )
    figure.update_layout(
        barmode="group",
        height=340,
        margin={"t": 30, "b": 10, "l": 10, "r": 10},
        legend={"orientation": "h", "y": 1.1},
    )
    figure.update_yaxes(title_text="requests", secondary_y=False, rangemode="tozero")
    figure.update_yaxes(
        title_text="failure rate %", secondary_y=True, range=[0, 100], tickvals=[0, 25, 50, 75, 100]
    )
    figure.update_xaxes(title_text=f"one bar per {formatting.fmt_duration(overview.bucket_ms)}")
    return figure


def _latency_time_chart(overview: Overview) -> go.Figure | None:
    over_time = latency_over_time(overview.latency, overview.bucket_ms)
    if over_time.empty:
        return None
    long = over_time.melt(id_vars=["time", "stage"], value_vars=["p50", "p95", "p99"], var_name="percentile")
    long["time"] = pd.to_datetime(long["time"], utc=True).dt.tz_convert(formatting.display_zone())
    figure = px.line(
        long,
        x="time",
        y="value",
        color="stage",
        line_dash="percentile",
        markers=True,
        labels={"value": "ms (log scale)", "time": "created"},
        title="Latency over time (by creation time)",
        log_y=True,  # a few stuck requests must not flatten everything else to zero
    )
    figure.update_layout(height=340, margin=formatting.CHART_MARGIN)
    # The whole selected range on the time axis, as on the throughput chart (one bucket of points would
    # otherwise be stretched across the chart with millisecond ticks).
    zone = formatting.display_zone()
    bounds = pd.to_datetime([overview.since_ms, overview.until_ms], unit="ms", utc=True).tz_convert(zone)
    figure.update_xaxes(range=[bounds[0], bounds[1]])
    return figure


def _latency_distribution(overview: Overview) -> go.Figure:
    long = overview.latency.melt(
        id_vars=["id"],
        value_vars=["queue_wait_ms", "processing_ms", "end_to_end_ms"],
        var_name="stage",
        value_name="ms",
    )
    long["stage"] = long["stage"].map(
        {"queue_wait_ms": "queue wait", "processing_ms": "processing", "end_to_end_ms": "end to end"}
    )
    figure = px.box(
        long,
        x="stage",
        y="ms",
        color="stage",
        points="outliers",
        log_y=True,
        labels={"ms": "ms (log scale)"},
        title="Latency distribution",
    )
    figure.update_layout(height=340, showlegend=False, margin=formatting.CHART_MARGIN)
    return figure


def _percentile_table(overview: Overview) -> pd.DataFrame:
    table = overview.percentiles.copy()
    for column in ("p50", "p95", "p99"):
        table[column] = table[column].map(formatting.fmt_duration)
    return table


@st.fragment(run_every=controls.refresh_interval(settings))
def live_overview() -> None:
    """Everything below the range control; re-runs on its own every refresh interval."""
    now = reads.now_ms()
    since, until = time_range.bounds(now)
    assert since is not None and until is not None  # the overview has no "any time" choice
    try:
        overview = reads.cached_overview(settings, since, until, now)
        empty = overview.examined == 0 and reads.cached_table_is_empty(settings)
    except StoreUnavailable as error:
        notices.cannot_read(error)
        return
    if empty:
        st.info(
            f"The table {settings.table} is empty: no request has been sent yet. "
            "Send one from the Submit page, or run `make demo`."
        )
        return
    st.caption(
        f"{formatting.fmt_time(since, zone=formatting.display_zone())} to "
        f"{formatting.fmt_time(until, zone=formatting.display_zone())} · read {overview.examined} item(s) · "
        f"updated {formatting.fmt_time(now, zone=formatting.display_zone())}"
    )
    _metrics(overview)

    st.subheader("Throughput and failure rate")
    st.caption(
        "Requests created in the selected range: accepted when created, succeeded or failed when finished."
    )
    st.plotly_chart(_throughput_chart(overview), key="throughput_chart")

    st.subheader("Latency")
    if overview.latency.empty:
        st.info("No request created in this range has finished yet: no latency to show.")
        return
    left, right = st.columns(2)
    with left:
        figure = _latency_time_chart(overview)
        if figure is not None:
            st.plotly_chart(figure, key="latency_time_chart")
    with right:
        st.plotly_chart(_latency_distribution(overview), key="latency_distribution_chart")
    st.dataframe(_percentile_table(overview), hide_index=True, key="latency_percentiles")


live_overview()
