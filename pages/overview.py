"""Overview: what is open right now, and in a range how many requests made each transition, how fast they
flowed and how long they took (from the rollups, see docs/rollups.md "The overview")."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots
from streamdesk_rollups.schema import Grain

from backend.computed.overview import MAX_RANGE_MS, Overview
from backend.dashboard import controls, formatting, notices, overview_labels, reads, sign_in
from backend.store.calls import StoreUnavailable

settings = reads.app_settings()
sign_in.page_actor(settings)  # everyone signed in may look; see sign_in.page_actor for why pages ask
st.title("Overview")
time_range = controls.time_range_control("overview", allow_any=False, default="1 hour", long_ranges=True)


def _metrics(overview: Overview) -> None:
    st.subheader("Right now (every open request, whatever its age)")
    now = overview_labels.now_figures(
        overview, settings.stuck_after_ms, settings.expiring_horizon_hours, settings.succeeded_days
    )
    now += overview_labels.kept_figures(overview, settings.closed_days)
    per_row = 6
    for row in range(0, len(now), per_row):
        part = now[row : row + per_row]
        for column, figure in zip(st.columns(per_row)[: len(part)], part, strict=True):
            column.metric(figure.label, figure.value, help=figure.help)

    st.subheader(f"Transitions in the selected range ({time_range.label.lower()})")
    in_range = overview_labels.range_figures(overview)
    for row in range(0, len(in_range), per_row):
        part = in_range[row : row + per_row]
        for column, figure in zip(st.columns(per_row)[: len(part)], part, strict=True):
            column.metric(figure.label, figure.value, help=figure.help)


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


def _time_axis(figure: go.Figure, overview: Overview) -> None:
    # The whole range read on the time axis, as on the throughput chart (one bucket of points would
    # otherwise be stretched across the chart with millisecond ticks).
    zone = formatting.display_zone()
    bounds = pd.to_datetime([overview.covered_since_ms, overview.until_ms], unit="ms", utc=True)
    figure.update_xaxes(range=list(bounds.tz_convert(zone)))


def _latency_time_chart(overview: Overview) -> go.Figure | None:
    over_time = overview.latency_over_time
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
        labels={"value": "ms (log scale)", "time": "finished"},
        title=f"Latency over time (by finish time, per {formatting.fmt_duration(overview.bucket_ms)})",
        log_y=True,  # a few stuck requests must not flatten everything else to zero
    )
    figure.update_layout(height=340, margin=formatting.CHART_MARGIN)
    _time_axis(figure, overview)
    return figure


def _latency_distribution(overview: Overview) -> go.Figure:
    frame = overview.distribution.copy()
    frame["share"] = frame["share"] * 100
    figure = px.line(
        frame,
        x="ms",
        y="share",
        color="stage",
        line_shape="hv",
        markers=True,
        log_x=True,
        labels={"ms": "ms (log scale, bars about 20 % wide)", "share": "% of the stage's requests"},
        title="Latency distribution (the range's merged sketches)",
    )
    figure.update_layout(height=340, margin=formatting.CHART_MARGIN)
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
        empty = overview.quiet and reads.cached_table_is_empty(settings)
    except StoreUnavailable as error:
        notices.cannot_read(error)
        return
    if empty:
        st.info(
            f"The table {settings.table} is empty: no request has been sent yet. "
            "Send one from the Submit page, or run `make demo`."
        )
        return
    zone = formatting.display_zone()
    if overview.cut:
        st.warning(
            f"Ranges are at most {formatting.fmt_duration(MAX_RANGE_MS)}: showing the last part of it."
        )
    whole = "minutes" if overview.grain is Grain.MINUTE else "hours"
    st.caption(
        f"{formatting.fmt_time(overview.covered_since_ms, zone=zone)} to "
        f"{formatting.fmt_time(until, zone=zone)} (whole {whole} of the rollups) · "
        f"read {overview.examined} item(s) · DynamoDB counted {overview.counted} state-index entries "
        f"(Select=COUNT) · updated {formatting.fmt_time(now, zone=zone)}"
    )
    _metrics(overview)

    st.subheader("Throughput and failure rate")
    st.caption(
        "Transitions per bar: accepted when created, succeeded or failed when finished (a request accepted "
        "before the range and finished in it counts as finished only)."
    )
    st.plotly_chart(_throughput_chart(overview), key="throughput_chart")

    st.subheader("Latency")
    if overview.distribution.empty:
        st.info("No request finished in this range: no latency to show.")
        return
    st.caption(
        "Of the requests that finished in the range (succeeded or failed), from the rollups' latency "
        "sketches: percentiles within 1 % of the exact value. Queue wait runs from acceptance (or the last "
        "redrive) to the latest attempt's start."
    )
    left, right = st.columns(2)
    with left:
        figure = _latency_time_chart(overview)
        if figure is not None:
            st.plotly_chart(figure, key="latency_time_chart")
    with right:
        st.plotly_chart(_latency_distribution(overview), key="latency_distribution_chart")
    st.dataframe(_percentile_table(overview), hide_index=True, key="latency_percentiles")


live_overview()
