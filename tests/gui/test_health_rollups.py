"""The Health page's rollups section (AppTest of the real dashboard) against DynamoDB Local: the rollups
consumer's trigger (the real trigger twin on ``RollupsStream``, its state file its own ``state()``), how far
behind the counts are, and the requests per minute read from the rollups; a rollups trigger that never ran
and a rollups table that is not there are said plainly."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from typing import Any

from streamdesk_processor import item as attr

from backend.computed.health import load_health
from backend.dashboard.formatting import md_escape
from backend.local.checkpoint import atomic_write_json
from backend.local.local_template import local_template
from backend.local.table import ensure_table
from backend.local.trigger import Trigger
from backend.local.trigger_files import trigger_files
from backend.settings import Settings
from backend.store.reader import RequestStore
from backend.template import ROLLUPS_FUNCTION_ID, ROLLUPS_TABLE_ID, Template
from tests.gui.conftest import RunPage, metrics, texts
from tests.processor_events import put_pending_item, read_item

PAGE = "pages/health.py"
FAILS = {"simulate": {"fail": "card declined", "failAtStep": 2}}


def test_the_rollups_trigger_and_the_requests_per_minute_from_the_rollups(
    run_page: RunPage, ddb: Any, app_env: Settings, template: Template
) -> None:
    ensure_table(ddb, app_env.rollups_table, local_template(app_env, template), ROLLUPS_TABLE_ID)
    ids = [put_pending_item(ddb, app_env.table, FAILS if n == 0 else {"order": n}) for n in range(3)]
    with ExitStack() as stack:
        processor = stack.enter_context(Trigger(app_env, template))
        rollups = stack.enter_context(Trigger(app_env, template, function_id=ROLLUPS_FUNCTION_ID))
        processor.poll_once()
        assert [read_item(ddb, app_env.table, i)[attr.STATUS] for i in ids] == ["FAILED", *["SUCCEEDED"] * 2]
        deadline = time.monotonic() + 30
        while rollups.poll_once() or not rollups.state()["batches"]:
            assert time.monotonic() < deadline, "the rollups trigger counted nothing"
        atomic_write_json(trigger_files(app_env, ROLLUPS_FUNCTION_ID).state, rollups.state(), durable=False)

        report = load_health(app_env, RequestStore(app_env), int(time.time() * 1000))
        assert report.rollups_trigger is not None and report.rollups_trigger.running
        assert report.activity is not None
        counted = report.activity.groupby("metric")["value"].sum().to_dict()
        assert counted == {"accepted": 3, "started": 3, "succeeded": 2, "failed": 1}
        assert len(report.activity) == 60 * 4  # every minute of the hour, quiet ones at 0

        app = run_page(PAGE)
    shown = texts(app)
    assert "Rollups consumer up · counts are " in shown and " behind · last batch " in shown
    numbers = metrics(app)
    assert int(numbers["Rollups batches"]) >= 1 and numbers["Rollups function errors"] == "0"
    assert numbers["Rollups iterator age"] != "—"
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    titles = [chart["layout"]["title"]["text"] for chart in charts]
    assert "Requests per minute over the last hour (rollups): accepted, started, succeeded, failed" in titles
    requests_chart = charts[titles.index(next(t for t in titles if t.startswith("Requests per minute")))]
    assert {trace["name"] for trace in requests_chart["data"]} == {
        "accepted",
        "started",
        "succeeded",
        "failed",
    }


def test_a_rollups_trigger_that_never_ran_and_no_rollups_table(run_page: RunPage, app_env: Settings) -> None:
    app = run_page(PAGE)
    shown = texts(app)
    assert "The rollups trigger has never run here" in shown
    assert md_escape(f"cannot read the rollups: table {app_env.rollups_table} does not exist") in shown
