"""The health page's sections about the local twin itself: the table outages the trigger waits out, its
concurrency and per-shard progress, and the local stack's processes and their restarts (``make up`` only).
Layout only, like the page (``pages/health.py``), which calls them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.computed.health import HealthReport
from backend.dashboard import formatting
from backend.deployed.health import Part
from backend.stack_restarts import ComponentState, StackRestarts
from backend.trigger_state import TriggerState


def ago(ms: int | None, now: int) -> str:
    # "now" is rounded down to the second (the cache key), so a fresh heartbeat can be a little ahead of it.
    if ms is None:
        return formatting.NO_VALUE
    return f"{formatting.fmt_duration(max(0, now - ms))} ago"


def table_outages(state: TriggerState, now: int) -> None:
    st.markdown("**Table outages**")
    if state.table_unreachable_since is not None:
        st.warning(
            f"The table does not answer (since {ago(state.table_unreachable_since, now)}): the trigger is "
            "waiting for the table; no retries are being spent. Its batches go on once the table is back."
        )
    cols = st.columns(4)
    cols[0].metric(
        "Outages waited out",
        state.table_outages_waited,
        help="Failed batches that found the table unreachable: the trigger waited instead of retrying.",
    )
    cols[1].metric("Time waited for the table", formatting.fmt_duration(state.table_outage_seconds * 1000))
    cols[2].metric(
        "Records parked by an outage",
        state.parked_by_outage,
        help="Given up on while the table was unreachable; handed back to the function once it answers.",
    )
    cols[3].metric("Batches handed back after an outage", state.handed_back_after_outage)


def concurrency(state: TriggerState) -> None:
    st.markdown("**Concurrency and shards**")
    concurrency = state.processor_concurrency
    cols = st.columns(4)
    cols[0].metric(
        "Batches at once per shard",
        state.parallelization_factor,
        help="The mapping's ParallelizationFactor: a shard's keys are spread over this many lanes.",
    )
    cols[1].metric("Batch size", state.batch_size)
    cols[2].metric(
        "Records at once per invocation",
        concurrency if concurrency is not None else formatting.NO_VALUE,
        help="The function's CONCURRENCY variable (unset: one record after the other).",
    )
    cols[3].metric(
        "Batches in flight",
        state.in_flight_batches,
        help=f"Invocations running now; at most {state.parallelization_factor} per open shard.",
    )
    if not state.shard_progress:
        st.caption("No shard read yet.")
        return
    rows = [
        {
            "shard": p.shard_id,
            "checkpoint": p.checkpoint or formatting.NO_VALUE,
            "last read": p.last_read or formatting.NO_VALUE,
            "buffered": p.buffered,
            "queued": p.queued,
            "in flight": p.in_flight_batches,
            "not checkpointed": p.not_checkpointed,
            "closed": p.closed,
        }
        for p in state.shard_progress
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="health_shards")
    st.caption(
        "Not checkpointed: records read but not yet passed by the checkpoint (waiting, in flight, or done "
        "behind one that is not). If it grows while the checkpoint stays put, a slow or retrying batch is "
        "holding the shard back; after a restart the trigger reads again from the checkpoint."
    )


def stack_processes(report: HealthReport, now: int) -> None:
    st.subheader("Local stack processes")
    if Part.RESTARTS in report.errors:
        st.warning(f"Cannot read the supervisor's restarts: {report.errors[Part.RESTARTS]}")
        return
    restarts = report.restarts
    if restarts is None:
        st.caption("No restarts to show: the stack here was not started by `make up`'s supervisor.")
        return
    if restarts.stopped_because:
        st.error(f"The supervisor stopped the stack because {restarts.stopped_because}.")
    for component in restarts.components:
        if component.state is ComponentState.RESTARTING:
            st.warning(
                f"{component.name} is being restarted (last exit: {component.last_exit or 'unknown'}, "
                f"{ago(component.last_exit_at, now)})."
            )
    st.dataframe(restart_rows(restarts, now), hide_index=True, key="health_restarts")
    st.caption(
        f"Updated {ago(restarts.updated_at, now)}. A component that dies is restarted after 0.5 s, doubling "
        "per death within a minute; the fifth death within a minute stops the stack."
    )


def restart_rows(restarts: StackRestarts, now: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "component": c.name,
                "state": c.state.value,
                "pid": str(c.pid) if c.pid is not None else formatting.NO_VALUE,
                "restarts": c.restarts,
                "last exit": c.last_exit or formatting.NO_VALUE,
                "exited": ago(c.last_exit_at, now),
                "restarted": ago(c.last_restart_at, now),
                "deaths in the last minute": c.deaths_in_window,
            }
            for c in restarts.components
        ]
    )
