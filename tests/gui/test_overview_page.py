"""The overview page (AppTest, real dashboard, DynamoDB Local seeded with every state, the rollups kept by
the real rollups consumer over the seeded table's stream).

The seed writes each item in its final state (one INSERT per request), so the stream tells the consumer
what such inserts tell: "accepted" only for the requests inserted PENDING (and the one without createdAt,
counted at its record's time), "started" for those inserted PROCESSING, "succeeded" / "failed" with their
latencies for the finished ones, and +1 on the open-failures gauge per FAILED insert."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from streamdesk_processor.item import Status

from backend.local.dynamodb_local import free_port
from tests.gui.conftest import CountStream, RunPage, metrics, texts, value_of
from tests.seed import RETENTION_S, make_item, seed_every_state, write_items

OVERVIEW = "pages/overview.py"
pytestmark = pytest.mark.usefixtures("count_stream")  # every test here has a rollups table


def test_counts_equal_the_seeded_states(
    run_page: RunPage, ddb: Any, table_name: str, count_stream: CountStream
) -> None:
    # Seeded at a whole second: the page rounds "now" down to the second (its cache key), so the ages it
    # shows are never less than the seeded ones.
    now = int(time.time()) * 1000
    seeded = seed_every_state(ddb, table_name, now)
    # One success whose TTL (finish + the 7-day retention) falls within the expiring horizon (24 h).
    finished = now - RETENTION_S * 1000 + 3 * 3_600_000
    write_items(
        ddb,
        table_name,
        [
            make_item(
                id="due-0",
                status=Status.SUCCEEDED,
                created_at=finished - 900,
                started_at=finished - 600,
                finished_at=finished,
                attempts=1,
                ttl=finished // 1000 + RETENTION_S,
            )
        ],
    )
    count_stream()
    shown = metrics(run_page(OVERVIEW))

    pending = len(seeded["pending"]) + len(seeded["stuck_pending"])
    processing = len(seeded["processing"]) + len(seeded["stuck_processing"])
    failed = len(seeded["failed"]) + len(seeded["html"])
    stuck = len(seeded["stuck_pending"]) + len(seeded["stuck_processing"])
    # Every open request, whatever its age (the one without createdAt is in no index, so not counted).
    assert shown["Pending now"] == str(pending)
    assert shown["Processing now"] == str(processing)
    assert shown["Failed (open)"] == str(failed)  # the rollups' gauge: one per FAILED insert
    assert shown["Stuck now"] == str(stuck)
    assert shown["Oldest pending"].startswith("50 min")  # stuck_pending-0 was created 50 minutes ago
    assert shown["Expiring (24 h)"] == "1"  # due-0; the seed's own "expiring" ones finished minutes ago
    # Transitions in the default range (the last hour): the seed put everything in the last 55 minutes.
    assert shown["Accepted"] == str(pending + 1)  # inserted PENDING, and malformed-2 (no createdAt)
    assert shown["Started"] == str(processing)  # inserted PROCESSING with one attempt
    # Every success in the range, the two already past their TTL included (they did succeed).
    assert shown["Succeeded"] == str(len(seeded["succeeded"]) + len(seeded["expiring"]) + 2)
    assert shown["Failed"] == str(failed)
    assert shown["Expired"] == "0"  # nothing deleted by TTL yet
    assert shown["Retried automatically"] == shown["Redriven"] == "0"


def test_charts_and_percentiles_are_drawn(
    run_page: RunPage, ddb: Any, table_name: str, count_stream: CountStream
) -> None:
    seed_every_state(ddb, table_name, int(time.time() * 1000))
    count_stream()
    app = run_page(OVERVIEW)
    charts = app.get("plotly_chart")
    assert len(charts) == 3  # throughput + failure rate, latency over time, latency distribution
    percentiles = app.dataframe[0].value
    assert list(percentiles["stage"]) == ["queue wait", "processing", "end to end"]
    # Every seeded finished request took 300 ms to start and 600 ms of work (html-0: 100 ms and 200 ms).
    assert percentiles.loc[percentiles["stage"] == "processing", "count"].item() == 12
    # The sketch's value is within 1 % of the exact one (300 ms).
    p50 = percentiles.loc[percentiles["stage"] == "queue wait", "p50"].item()
    assert p50.endswith(" ms") and abs(int(p50.removesuffix(" ms")) - 300) <= 3


def test_odd_statuses_do_not_break_the_overview(
    run_page: RunPage, ddb: Any, table_name: str, count_stream: CountStream
) -> None:
    # Items with a missing or unknown status are in no state index and make no transition: the overview
    # (rollups and the state index) cannot see them; the Requests page's UNKNOWN state lists them.
    seed_every_state(ddb, table_name, int(time.time() * 1000))
    count_stream()
    app = run_page(OVERVIEW)
    assert not app.warning
    assert "Traceback" not in texts(app)


def test_a_shorter_range_counts_fewer(
    run_page: RunPage, ddb: Any, table_name: str, count_stream: CountStream
) -> None:
    seeded = seed_every_state(ddb, table_name, int(time.time() * 1000))
    count_stream()
    app = run_page(OVERVIEW)
    app.radio(key="overview_range").set_value("15 minutes").run()
    shown = metrics(app)
    # Only the recent pending and processing (seconds ago) and succeeded (10 to 13 minutes ago) remain.
    assert shown["Accepted"] == str(len(seeded["pending"]) + 1)  # and malformed-2, counted at its record
    assert shown["Started"] == str(len(seeded["processing"]))
    assert shown["Succeeded"] == str(len(seeded["succeeded"]))
    assert shown["Failed"] == "0"
    # What is open right now does not depend on the range.
    assert shown["Pending now"] == str(len(seeded["pending"]) + len(seeded["stuck_pending"]))
    assert shown["Failed (open)"] == str(len(seeded["failed"]) + len(seeded["html"]))


def test_thirty_days_is_a_choice(
    run_page: RunPage, ddb: Any, table_name: str, count_stream: CountStream
) -> None:
    seeded = seed_every_state(ddb, table_name, int(time.time() * 1000))
    count_stream()
    app = run_page(OVERVIEW)
    app.radio(key="overview_range").set_value("30 days").run()
    assert not app.exception
    assert "whole hours of the rollups" in texts(app)
    assert metrics(app)["Failed"] == str(len(seeded["failed"]) + len(seeded["html"]))


def test_sidebar_shows_where_the_dashboard_points(run_page: RunPage, table_name: str) -> None:
    app = run_page(OVERVIEW)
    sidebar = [value_of(t) for t in app.sidebar.get("text")]
    assert f"Table: {table_name}" in sidebar
    assert any(line.startswith("DynamoDB: http://127.0.0.1:") for line in sidebar)
    assert "API: http://127.0.0.1:9" in sidebar
    assert app.sidebar.toggle(key="sd_refresh_paused").value is False
    assert app.sidebar.number_input(key="sd_refresh_interval").value == 5.0


def test_a_quiet_day_is_not_an_empty_table(
    run_page: RunPage, ddb: Any, table_name: str, count_stream: CountStream
) -> None:
    two_days_ago = int(time.time() * 1000) - 2 * 86_400_000
    write_items(ddb, table_name, [make_item(id="old", status=Status.SUCCEEDED, created_at=two_days_ago)])
    count_stream()
    app = run_page(OVERVIEW)
    assert not [i.value for i in app.info if "is empty" in str(i.value)]
    assert metrics(app)["Accepted"] == "0"  # nothing in the last hour, and the page says it in numbers


def test_empty_table_says_so(run_page: RunPage, table_name: str) -> None:
    app = run_page(OVERVIEW)
    assert [i.value for i in app.info] == [
        f"The table {table_name} is empty: no request has been sent yet. "
        "Send one from the Submit page, or run `make demo`."
    ]
    assert not app.metric


def test_unreachable_dynamodb_is_a_plain_error(run_page: RunPage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(free_port()))  # nothing listens there
    app = run_page(OVERVIEW)
    [error] = app.error
    assert error.value.startswith("Cannot read the requests: DynamoDB at http://127.0.0.1:")
    assert "unreachable" in error.value
    assert "Traceback" not in texts(app)


def test_a_stack_that_cannot_be_read_is_a_plain_error(
    run_page: RunPage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A named stack makes the dashboard read its outputs from CloudFormation; without credentials it must
    # say so instead of failing with a traceback. No network is touched: credentials are missing.
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("STREAMDESK_STACK", "streamdesk-nowhere")
    app = run_page(OVERVIEW)
    [error] = app.error
    assert error.value.startswith("Cannot read the deployed stack 'streamdesk-nowhere': ")
    assert "credentials" in error.value
    assert not app.metric


def test_a_custom_range(run_page: RunPage, ddb: Any, table_name: str, count_stream: CountStream) -> None:
    seeded = seed_every_state(ddb, table_name, int(time.time() * 1000))
    count_stream()
    app = run_page(OVERVIEW)
    app.radio(key="overview_range").set_value("Custom").run()
    today = datetime.now(UTC).date()  # AppTest has no browser: the page shows UTC
    # The day before yesterday, whole: nothing was created then.
    app.date_input(key="overview_from_d").set_value(today - timedelta(days=2))
    app.date_input(key="overview_to_d").set_value(today - timedelta(days=2)).run()
    shown = metrics(app)
    assert shown["Accepted"] == "0"
    assert shown["Pending now"] == str(len(seeded["pending"]) + len(seeded["stuck_pending"]))
    # Through today: everything (accepted: those inserted PENDING, see the module docstring).
    app.date_input(key="overview_to_d").set_value(today).run()
    shown = metrics(app)
    assert shown["Accepted"] == str(len(seeded["pending"]) + len(seeded["stuck_pending"]) + 1)
    assert shown["Failed"] == str(len(seeded["failed"]) + len(seeded["html"]))
