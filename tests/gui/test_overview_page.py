"""The overview page (AppTest, real dashboard, DynamoDB Local seeded with every state)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backend.local.dynamodb_local import free_port
from tests.gui.conftest import RunPage, metrics, texts, value_of
from tests.seed import seed_every_state

OVERVIEW = "pages/overview.py"


def test_counts_equal_the_seeded_states(run_page: RunPage, ddb: Any, table_name: str) -> None:
    # Seeded at a whole second: the page rounds "now" down to the second (its cache key), so the ages it
    # shows are never less than the seeded ones.
    seeded = seed_every_state(ddb, table_name, int(time.time()) * 1000)
    shown = metrics(run_page(OVERVIEW))

    pending = len(seeded["pending"]) + len(seeded["stuck_pending"])
    processing = len(seeded["processing"]) + len(seeded["stuck_processing"])
    failed = len(seeded["failed"]) + len(seeded["html"])
    stuck = len(seeded["stuck_pending"]) + len(seeded["stuck_processing"])
    # Every open request, whatever its age (the one without createdAt is in no index, so not counted).
    assert shown["Pending now"] == str(pending)
    assert shown["Processing now"] == str(processing)
    assert shown["Failed (open)"] == str(failed)
    assert shown["Stuck now"] == str(stuck)
    assert shown["Oldest pending"].startswith("50 min")  # stuck_pending-0 was created 50 minutes ago
    # Created in the default range (the last hour): the seed put everything in the last 55 minutes.
    assert shown["Accepted"] == str(sum(len(ids) for ids in seeded.values()) - 1)
    assert shown["Pending"] == str(pending)
    assert shown["Processing"] == str(processing)
    assert shown["Succeeded"] == str(len(seeded["succeeded"]) + len(seeded["expiring"]))  # expired excluded
    assert shown["Failed"] == str(failed)
    assert shown["Expiring"] == str(len(seeded["expiring"]))
    assert shown["Expired"] == str(len(seeded["expired"]))
    assert shown["Stuck"] == str(stuck)


def test_charts_and_percentiles_are_drawn(run_page: RunPage, ddb: Any, table_name: str) -> None:
    seed_every_state(ddb, table_name, int(time.time() * 1000))
    app = run_page(OVERVIEW)
    charts = app.get("plotly_chart")
    assert len(charts) == 3  # throughput + failure rate, latency over time, latency distribution
    percentiles = app.dataframe[0].value
    assert list(percentiles["stage"]) == ["queue wait", "processing", "end to end"]
    # Every seeded finished request took 300 ms to start and 600 ms of work (html-0: 100 ms and 200 ms).
    assert percentiles.loc[percentiles["stage"] == "processing", "count"].item() == 12
    assert percentiles.loc[percentiles["stage"] == "queue wait", "p50"].item() == "300 ms"


def test_odd_statuses_are_reported_without_a_traceback(run_page: RunPage, ddb: Any, table_name: str) -> None:
    seed_every_state(ddb, table_name, int(time.time() * 1000))
    app = run_page(OVERVIEW)
    assert [w.value for w in app.warning] == [
        "2 request(s) have a missing or unrecognised status; find them on the Requests page with the "
        "UNKNOWN state."
    ]


def test_a_shorter_range_counts_fewer(run_page: RunPage, ddb: Any, table_name: str) -> None:
    seeded = seed_every_state(ddb, table_name, int(time.time() * 1000))
    app = run_page(OVERVIEW)
    app.radio(key="overview_range").set_value("15 minutes").run()
    shown = metrics(app)
    # Only pending, processing (all created seconds ago) and succeeded (10 to 13 minutes ago) remain.
    assert shown["Pending"] == str(len(seeded["pending"]))
    assert shown["Processing"] == str(len(seeded["processing"]))
    assert shown["Succeeded"] == str(len(seeded["succeeded"]))
    assert shown["Failed"] == "0"
    assert shown["Expired"] == "0"
    # What is open right now does not depend on the range.
    assert shown["Pending now"] == str(len(seeded["pending"]) + len(seeded["stuck_pending"]))


def test_sidebar_shows_where_the_dashboard_points(run_page: RunPage, table_name: str) -> None:
    app = run_page(OVERVIEW)
    sidebar = [value_of(t) for t in app.sidebar.get("text")]
    assert f"Table: {table_name}" in sidebar
    assert any(line.startswith("DynamoDB: http://127.0.0.1:") for line in sidebar)
    assert "API: http://127.0.0.1:9" in sidebar
    assert app.sidebar.toggle(key="sd_refresh_paused").value is False
    assert app.sidebar.number_input(key="sd_refresh_interval").value == 5.0


def test_a_quiet_day_is_not_an_empty_table(run_page: RunPage, ddb: Any, table_name: str) -> None:
    from streamdesk_processor.item import Status

    from tests.seed import make_item, write_items

    two_days_ago = int(time.time() * 1000) - 2 * 86_400_000
    write_items(ddb, table_name, [make_item(id="old", status=Status.SUCCEEDED, created_at=two_days_ago)])
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


def test_a_custom_range(run_page: RunPage, ddb: Any, table_name: str) -> None:
    seeded = seed_every_state(ddb, table_name, int(time.time() * 1000))
    app = run_page(OVERVIEW)
    app.radio(key="overview_range").set_value("Custom").run()
    today = datetime.now(UTC).date()  # AppTest has no browser: the page shows UTC
    # The day before yesterday, whole: nothing was created then.
    app.date_input(key="overview_from_d").set_value(today - timedelta(days=2))
    app.date_input(key="overview_to_d").set_value(today - timedelta(days=2)).run()
    shown = metrics(app)
    assert shown["Accepted"] == "0"
    assert shown["Pending now"] == str(len(seeded["pending"]) + len(seeded["stuck_pending"]))
    # Through today: everything.
    app.date_input(key="overview_to_d").set_value(today).run()
    assert metrics(app)["Accepted"] == str(sum(len(ids) for ids in seeded.values()) - 1)
