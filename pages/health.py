"""Pipeline health: the trigger (local twin or deployed event source mapping), with the local twin's table
outages, concurrency and per-shard progress; the batches it gave up on resolved back to their requests; the
table; the local stack's processes and their restarts; and stuck requests with what to do about each.

"Reconcile" (operators only) hands back the stuck requests a redrive can fix. Everything else on the page
is read-only; errors are shown as text.
"""

from __future__ import annotations

from typing import Final

import pandas as pd
import plotly.express as px
import streamlit as st
from streamdesk_processor.item import Status

from backend.computed.health import (
    HealthReport,
    Resolution,
    ResolvedBatch,
    metrics_frame,
    per_minute_frame,
)
from backend.computed.rollups_health import RollupsTrigger
from backend.computed.stuck import ADVICE, StuckRequest
from backend.dashboard import controls, formatting, notices, reads, sign_in
from backend.dashboard.health_local_twin import ago, concurrency, stack_processes, table_outages
from backend.deployed.health import Part
from backend.roles import PermissionDenied
from backend.store.calls import StoreUnavailable
from backend.trigger_state import TriggerMode

KEY_RECONCILE_ASKED: Final = "sd_health_reconcile_asked"
KEY_RECONCILE_REPORT: Final = "sd_health_reconcile_report"

settings = reads.app_settings()
actor = sign_in.page_actor(settings)


# ------------------------------------------------------------------------------------ trigger
def _local_trigger(report: HealthReport, now: int) -> None:
    state = report.local.state if report.local is not None else None
    if state is None:
        st.error(
            f"The trigger has never run here (no state file at {settings.trigger_state_path}). "
            "Nothing processes new requests: start the stack with `make up`."
        )
        return
    if report.trigger.running:
        st.success(f"Trigger running · heartbeat {ago(state.heartbeat_at, now)} · pid {state.pid}")
    elif state.mode is TriggerMode.STOPPED:
        st.error(f"Trigger stopped {ago(state.heartbeat_at, now)}: restart it (`make up`).")
    else:
        st.error(
            f"Trigger not running: its last heartbeat was {ago(state.heartbeat_at, now)} "
            "(the process died?). Restart it (`make up`)."
        )
    cols = st.columns(4)
    cols[0].metric("Last batch", ago(state.last_batch_at, now))
    cols[1].metric("Last batch size", state.last_batch_size)
    cols[2].metric("Last batch result", state.last_batch_result or formatting.NO_VALUE)
    age = state.iterator_age_ms
    cols[3].metric(
        "Iterator age",
        formatting.fmt_duration(age) if age is not None else formatting.NO_VALUE,
        help="Age of the last record of the latest batch when it was delivered (AWS's IteratorAge).",
    )
    cols = st.columns(4)
    cols[0].metric("Batches", state.batches)
    cols[1].metric("Records", state.records)
    cols[2].metric("Function errors", state.function_errors)
    cols[3].metric("Records given up on", state.records_sent_to_failure_destination)
    st.caption(
        f"Filtered out before invocation: {state.filtered_out} · shards: {state.shards} · "
        f"stream: {state.stream_arn or formatting.NO_VALUE}"
    )
    if state.last_error:
        st.caption("Last error")
        st.code(state.last_error, language="text", wrap_lines=True)
    frame = per_minute_frame(state, now)
    if frame.empty:
        st.caption("No batch in the last hour.")
        return
    zone = formatting.display_zone()
    frame["time"] = frame["time"].dt.tz_convert(zone)
    figure = px.bar(
        frame,
        x="time",
        y="value",
        color="metric",
        barmode="group",
        color_discrete_map={"batches": "#1f77b4", "records": "#2ca02c", "errors": "#d62728"},
        labels={"value": "per minute", "time": ""},
        title="The trigger per minute over the last hour: batches, records, errors",
    )
    figure.update_layout(height=300, margin=formatting.CHART_MARGIN)
    st.plotly_chart(figure, key="health_per_minute")


def _deployed_trigger(report: HealthReport) -> None:
    deployed = report.deployed
    mapping = deployed.mapping if deployed else None
    if mapping is None:
        st.warning(
            "The event source mapping could not be read: " + report.errors.get(Part.MAPPING, "unknown")
        )
    else:
        (st.success if mapping.enabled else st.error)(
            f"Event source mapping {mapping.uuid}: {mapping.state}"
            + (f" ({mapping.state_transition_reason})" if mapping.state_transition_reason else "")
        )
        st.caption(
            f"Last processing result: {mapping.last_processing_result or formatting.NO_VALUE} · batch size "
            f"{mapping.batch_size} · retries {mapping.maximum_retry_attempts} · record age "
            f"{mapping.maximum_record_age_seconds} s · bisect {mapping.bisect_batch_on_function_error}"
        )
    frame = metrics_frame(deployed)
    if frame.empty:
        st.caption("No CloudWatch data points in the last hour.")
        return
    figure = px.line(
        frame, x="time", y="value", facet_row="metric", markers=True, title="CloudWatch (per minute)"
    )
    figure.update_yaxes(matches=None)
    figure.update_layout(height=520, margin=formatting.CHART_MARGIN)
    st.plotly_chart(figure, key="health_cloudwatch")


# ------------------------------------------------------------------------------------ rollups
def _rollups(report: HealthReport, now: int) -> None:
    """The rollups consumer's trigger (are the counts behind?) and the requests per minute it counted."""
    st.subheader("Rollups (counts of the overview, the failure groups and the chart below)")
    rollups = report.rollups_trigger
    if Part.ROLLUPS_TRIGGER in report.errors:
        st.warning(f"The rollups trigger could not be read: {report.errors[Part.ROLLUPS_TRIGGER]}")
    if rollups is None:
        st.caption("This stack has no rollups consumer (deployed before the rollups).")
    elif rollups.state is None and rollups.mapping is None and not report.deployed_mode:
        st.error(
            "The rollups trigger has never run here: the counts are empty and fall behind every request. "
            "Start the stack with `make up` (component `rollups`)."
        )
    else:
        _rollups_trigger_status(rollups, now)
    _activity_chart(report)


def _rollups_trigger_status(rollups: RollupsTrigger, now: int) -> None:
    behind = rollups.behind_ms
    if rollups.running:
        lag = f"counts are {formatting.fmt_duration(behind)} behind" if behind is not None else "lag unknown"
        st.success(f"Rollups consumer up · {lag} · last batch {ago(rollups.last_batch_at, now)}")
    elif rollups.running is None:
        st.warning("The rollups trigger's state is unknown (its mapping is changing or unreadable).")
    else:
        st.error(
            f"Rollups consumer down (last batch {ago(rollups.last_batch_at, now)}): the counts stop "
            "there and fall behind; they catch up from its checkpoint, each record once, when it is back."
        )
    cols = st.columns(4)
    cols[0].metric("Rollups last batch", ago(rollups.last_batch_at, now))
    age = rollups.iterator_age_ms
    cols[1].metric(
        "Rollups iterator age",
        formatting.fmt_duration(age) if age is not None else formatting.NO_VALUE,
        help="Age of the latest counted record when it was counted: how far the counts lag the requests.",
    )
    if rollups.state is not None:
        cols[2].metric("Rollups batches", rollups.state.batches)
        cols[3].metric("Rollups function errors", rollups.state.function_errors)
    elif rollups.mapping is not None:
        cols[2].metric("RollupsStream", rollups.mapping.state)
        cols[3].metric(
            "Last processing result", rollups.mapping.last_processing_result or formatting.NO_VALUE
        )


def _activity_chart(report: HealthReport) -> None:
    if Part.ROLLUPS in report.errors:
        st.warning(formatting.md_escape(report.errors[Part.ROLLUPS]))
        return
    frame = report.activity
    if frame is None or frame.empty or not frame["value"].any():
        st.caption("No request counted in the last hour.")
        return
    frame = frame.assign(time=frame["time"].dt.tz_convert(formatting.display_zone()))
    figure = px.bar(
        frame,
        x="time",
        y="value",
        color="metric",
        barmode="group",
        labels={"value": "requests per minute", "time": ""},
        title="Requests per minute over the last hour (rollups): accepted, started, succeeded, failed",
    )
    figure.update_layout(height=300, margin=formatting.CHART_MARGIN)
    st.plotly_chart(figure, key="health_requests_per_minute")


# ------------------------------------------------------------------------------------ destination
def _failed_batch(entry: ResolvedBatch, number: int) -> None:
    batch = entry.batch
    with st.container(border=True):
        st.markdown(f"**Batch of {batch.batch_size} record(s)** · {entry.resolution.value}")
        st.caption(
            f"given up at {batch.timestamp or formatting.NO_VALUE} · "
            f"{batch.condition or 'unknown condition'} · function error {batch.function_error or 'none'} · "
            f"shard {batch.shard_id} · sequence {batch.start_sequence_number} to {batch.end_sequence_number}"
        )
        if entry.detail:
            (st.warning if entry.resolution is not Resolution.RESOLVED else st.caption)(entry.detail)
        if entry.request_ids:
            st.dataframe(
                pd.DataFrame(
                    {
                        "request": list(entry.request_ids),
                        "open": [formatting.detail_href(i) for i in entry.request_ids],
                    }
                ),
                hide_index=True,
                key=f"health_batch_{number}",
                column_config={"open": st.column_config.LinkColumn("open", display_text="open detail")},
            )
            st.caption("Requests covered: " + ", ".join(entry.request_ids))


def _destination(report: HealthReport) -> None:
    st.subheader("Failure destination")
    if Part.FAILURE_DESTINATION in report.errors or Part.FAILURE_QUEUE in report.errors:
        st.warning(report.errors.get(Part.FAILURE_DESTINATION) or report.errors.get(Part.FAILURE_QUEUE, ""))
    if not report.failures:
        if report.failure_messages:
            st.caption(f"{report.failure_messages} message(s) waiting; none could be read just now.")
        else:
            st.caption("No batch was given up on.")
        return
    st.caption(
        f"{report.failure_messages} message(s); the newest {len(report.failures)} resolved through the "
        "stream (records stay readable there for 24 hours)."
    )
    for number, entry in enumerate(report.failures):
        _failed_batch(entry, number)


# ------------------------------------------------------------------------------------ table
def _table(report: HealthReport) -> None:
    st.subheader("Table")
    info = report.table
    if info is None:
        st.error(f"Cannot describe the table: {report.errors.get(Part.TABLE, 'unknown error')}")
        return
    cols = st.columns(4)
    cols[0].metric("Items", f"{info.item_count:,}", help="Approximate: DynamoDB refreshes it every ~6 hours.")
    cols[1].metric("Table status", info.status)
    stream = f"enabled, {info.stream_view_type}" if info.stream_enabled else "DISABLED: nothing triggers"
    cols[2].markdown(f"**Stream**  \n{stream}")
    cols[3].markdown(f"**TTL**  \n{info.ttl_status or 'unknown'} on attribute {info.ttl_attribute or '-'}")


# ------------------------------------------------------------------------------------ stuck
def _reconcile() -> None:
    try:
        results = reads.pipeline_for(settings).reconcile(actor)
    except PermissionDenied as error:
        st.error(str(error))
        return
    except StoreUnavailable as error:
        st.error(f"Reconcile stopped: {error}")
        return
    st.session_state[KEY_RECONCILE_REPORT] = [(r.request_id, r.outcome.value, r.detail) for r in results]
    st.session_state.pop(KEY_RECONCILE_ASKED, None)
    reads.clear_caches()
    st.rerun()


def _reconcile_report() -> None:
    """What the latest reconcile handed back, until dismissed."""
    report: list[tuple[str, str, str]] | None = st.session_state.get(KEY_RECONCILE_REPORT)
    if report is None:
        return
    with st.container(border=True):
        st.markdown(f"**Reconcile** handed back {len(report)} request(s)")
        if report:
            st.dataframe(
                pd.DataFrame(report, columns=["id", "outcome", "detail"]),
                hide_index=True,
                key="health_reconcile_report",
            )
        else:
            st.caption("Nothing a redrive could fix.")
        if st.button("Dismiss", key="health_reconcile_dismiss"):
            st.session_state.pop(KEY_RECONCILE_REPORT, None)
            st.rerun()


def _stuck_section(now: int) -> None:
    threshold = formatting.fmt_duration(settings.stuck_after_ms)
    st.subheader("Stuck requests")
    st.caption(f"Pending or processing for over {threshold}.")
    _reconcile_report()
    try:
        stuck = reads.cached_stuck(settings, now)
    except StoreUnavailable as error:
        notices.cannot_read(error)
        return
    if not stuck:
        st.success("No stuck requests.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "id": s.summary.id,
                    "status": s.summary.status,
                    "idle": formatting.fmt_duration(s.idle_ms),
                    "reason": s.reason.value,
                    "reconcile": "hands it back" if s.fixed_by_reconcile else "leaves it",
                    "open": formatting.detail_href(s.summary.id),
                }
                for s in stuck
            ],
            columns=["id", "status", "idle", "reason", "reconcile", "open"],
        ),
        hide_index=True,
        key="health_stuck_table",
        column_config={"open": st.column_config.LinkColumn("open", display_text="open detail")},
    )
    st.markdown("**What to do**")
    for reason in dict.fromkeys(s.reason for s in stuck):
        count = sum(1 for s in stuck if s.reason is reason)
        st.caption(f"{reason.value} ({count})")
        st.text(ADVICE[reason])
    _reconcile_controls([s for s in stuck if s.fixed_by_reconcile])


def _reconcile_controls(fixable: list[StuckRequest]) -> None:
    """Reconcile (operators only): ask, confirm, hand back."""
    if not actor.may_change:
        return
    if not fixable:
        st.caption("Reconcile has nothing to hand back: fix the cause above.")
        return
    if st.button(f"Reconcile ({len(fixable)})", key="health_reconcile", icon=":material/build:"):
        st.session_state[KEY_RECONCILE_ASKED] = True
    if st.session_state.get(KEY_RECONCILE_ASKED):
        st.warning(
            f"Hand back {len(fixable)} stuck request(s)? Each is marked {Status.FAILED} (error type Stuck) "
            "and retried at once; a request that moved on meanwhile is left alone."
        )
        confirm, cancel = st.columns([1, 4])
        if confirm.button("Confirm: reconcile", type="primary", key="health_reconcile_confirm"):
            _reconcile()
        if cancel.button("Cancel", key="health_reconcile_cancel"):
            st.session_state.pop(KEY_RECONCILE_ASKED, None)
            st.rerun()


# ------------------------------------------------------------------------------------ page
st.title("Pipeline health")
if not actor.may_change:
    st.info(f"You are a {actor.role.value}: you see the pipeline's health; reconciling is for operators.")


@st.fragment(run_every=controls.refresh_interval(settings))
def live_health() -> None:
    now = reads.now_ms()
    report = reads.cached_health(settings, now)
    st.subheader("Trigger" + (f" (stack {settings.stack})" if settings.stack else " (local twin)"))
    state = report.local.state if report.local is not None else None
    if report.deployed_mode:
        _deployed_trigger(report)
    else:
        _local_trigger(report, now)
        if state is not None:
            table_outages(state, now)
            concurrency(state)
    _rollups(report, now)
    _destination(report)
    _table(report)
    if not report.deployed_mode:
        stack_processes(report, now)  # the supervisor of `make up`: a deployed stack has none
    shown = (
        Part.TABLE,
        Part.FAILURE_DESTINATION,
        Part.FAILURE_QUEUE,
        Part.MAPPING,
        Part.RESTARTS,
        Part.ROLLUPS,
        Part.ROLLUPS_TRIGGER,
    )
    other = {k: v for k, v in report.errors.items() if k not in shown}
    for part, problem in other.items():
        st.warning(f"{part}: {formatting.md_escape(problem)}")


@st.fragment(run_every=controls.refresh_interval(settings))
def live_stuck() -> None:
    _stuck_section(reads.now_ms())


@st.fragment(run_every=controls.refresh_interval(settings))
def live_slow_lane() -> None:
    """The slow lane (docs/slow-lane.md): long requests handed off the stream to the slow-work queue."""
    now = reads.now_ms()
    lane = reads.cached_slow_lane(settings, now)
    st.subheader("Slow lane (slow-work queue)")
    columns = st.columns(4)
    queue, dead = lane.queue, lane.dead_letter
    columns[0].metric("Waiting", "–" if queue is None else queue.visible, help="Handed off, not yet taken.")
    columns[1].metric(
        "In flight", "–" if queue is None else queue.in_flight, help="Being run, or waiting out a retry."
    )
    age = "–" if lane.oldest_age_ms is None else formatting.fmt_duration(lane.oldest_age_ms)
    columns[2].metric("Oldest message", age)
    columns[3].metric("Dead-letter queue", "–" if dead is None else dead.visible)
    if dead is not None and dead.visible:
        st.error(
            f"{dead.visible} hand-off message(s) in the dead-letter queue: their requests wait PROCESSING; "
            "reconcile them (stuck requests below) once the cause is fixed."
        )
    worker = lane.worker
    if not settings.stack:
        if worker is None:
            st.warning("The slow-work event source has never run here (`make up` starts it).")
        elif lane.worker_running:
            st.success(
                f"Slow-work event source running · pid {worker.pid} · {worker.in_flight} of {worker.pollers} "
                f"pollers busy · {worker.batches} batches, {worker.left_for_redelivery} left for redelivery, "
                f"last batch {ago(worker.last_batch_at, now)}"
            )
        else:
            st.error(f"Slow-work event source not running: last heartbeat {ago(worker.heartbeat_at, now)}.")
    for part, problem in lane.errors.items():
        st.warning(f"{part}: {formatting.md_escape(problem)}")


live_health()
live_slow_lane()
live_stuck()
