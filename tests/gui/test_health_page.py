"""The Health page (AppTest of the real dashboard) against DynamoDB Local and the real trigger twin: the
trigger's state, a batch given up on resolved to its requests, the table, stuck requests with reasons and
advice, and a reconcile that brings them to a final state through the real trigger and processor."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from streamdesk_processor import item as attr

from backend.computed.stuck import ADVICE, StuckReason
from backend.local.esm_config import load_esm_config
from backend.local.local_template import local_template
from backend.local.trigger import Trigger
from backend.settings import Settings
from backend.template import Template
from tests.gui.conftest import RunPage, clear_streamlit_caches, metrics, texts
from tests.integration.test_health import MINUTE_MS, abandoned_claim, always_raises, hidden_pending
from tests.processor_events import put_pending_item, read_item

PAGE = "pages/health.py"


def stuck_rows(app: Any) -> list[dict[str, Any]]:
    frame = next(d.value for d in app.dataframe if "reason" in d.value.columns)
    rows: list[dict[str, Any]] = frame.to_dict("records")
    return rows


def test_trigger_state_a_resolved_failed_batch_and_the_table(
    run_page: RunPage, ddb: Any, app_env: Settings, template: Template
) -> None:
    ids = [put_pending_item(ddb, app_env.table, {"order": n}) for n in range(3)]
    esm = replace(
        load_esm_config(local_template(app_env, template)),
        maximum_retry_attempts=0,
        bisect_batch_on_function_error=False,
        parallelization_factor=1,  # one lane: the three requests are one batch
    )
    with Trigger(app_env, template, invoke=always_raises, esm=esm) as trigger:
        trigger.poll_once()  # the function raises; with no retries the batch goes to the destination

    app = run_page(PAGE)

    shown = texts(app)
    assert "Trigger running" in shown
    numbers = metrics(app)
    assert numbers["Batches"] == "1" and numbers["Records"] == "3"
    assert numbers["Function errors"] == "1" and numbers["Records given up on"] == "3"
    assert numbers["Last batch result"] == "FUNCTION_ERROR" and numbers["Last batch size"] == "3"
    assert numbers["Iterator age"] != "—"
    assert app.get("plotly_chart"), "the per-minute chart is shown"
    assert "RuntimeError: the function is broken" in [c.value for c in app.code]

    assert "**Batch of 3 record(s)** · resolved" in shown
    assert "RetryAttemptsExhausted" in shown
    assert "Requests covered: " + ", ".join(ids) in shown
    batch = next(d.value for d in app.dataframe if "request" in d.value.columns)
    assert list(batch["request"]) == ids
    assert list(batch["open"]) == [f"requests?id={i}" for i in ids]

    assert "**Stream**  \nenabled, NEW_AND_OLD_IMAGES" in shown
    assert "**TTL**  \nENABLED on attribute ttl" in shown
    assert numbers["Table status"] == "ACTIVE"
    assert "No stuck requests." in shown


def test_stuck_requests_with_advice_and_a_reconcile(
    run_page: RunPage, ddb: Any, app_env: Settings, template: Template
) -> None:
    now = int(time.time() * 1000)
    hidden_pending(ddb, app_env.table, "old-pending", now - 25 * 60 * MINUTE_MS)
    abandoned_claim(ddb, app_env.table, "abandoned", now)
    with Trigger(app_env, template) as trigger:
        trigger.poll_once()  # healthy, and nothing in the stream for them
        app = run_page(PAGE)

        rows = {r["id"]: r for r in stuck_rows(app)}
        assert {i: (r["reason"], r["reconcile"]) for i, r in rows.items()} == {
            "old-pending": (StuckReason.BEYOND_STREAM_RETENTION.value, "hands it back"),
            "abandoned": (StuckReason.CLAIM_ABANDONED.value, "hands it back"),
        }
        assert rows["abandoned"]["open"] == "requests?id=abandoned"
        advice = [t.value for t in app.text]
        assert ADVICE[StuckReason.BEYOND_STREAM_RETENTION] in advice
        assert ADVICE[StuckReason.CLAIM_ABANDONED] in advice

        app.button(key="health_reconcile").click().run()
        assert "Hand back 2 stuck request(s)?" in texts(app)
        assert read_item(ddb, app_env.table, "abandoned")[attr.STATUS] == "PROCESSING"  # not yet
        app.button(key="health_reconcile_confirm").click().run()
        assert not app.exception, [e.value for e in app.exception]

        report = next(d.value for d in app.dataframe if "outcome" in d.value.columns)
        assert sorted(report["id"]) == ["abandoned", "old-pending"]
        assert set(report["outcome"]) == {"redriven"}
        trigger.poll_once()

    for request_id in ("old-pending", "abandoned"):
        assert read_item(ddb, app_env.table, request_id)[attr.STATUS] == "SUCCEEDED"
    clear_streamlit_caches()
    app.run()
    assert "No stuck requests." in texts(app)


def test_a_trigger_that_never_ran(run_page: RunPage, ddb: Any, app_env: Settings) -> None:
    now = int(time.time() * 1000)
    waiting = put_pending_item(ddb, app_env.table, {"order": 1}, created_at_ms=now - 10 * MINUTE_MS)

    app = run_page(PAGE)

    shown = texts(app)
    assert "The trigger has never run here" in shown
    assert "No batch was given up on." in shown
    [row] = stuck_rows(app)
    assert (row["id"], row["reason"], row["reconcile"]) == (
        waiting, StuckReason.TRIGGER_STOPPED.value, "leaves it"
    )  # fmt: skip
    assert ADVICE[StuckReason.TRIGGER_STOPPED] in [t.value for t in app.text]
    assert "Reconcile has nothing to hand back: fix the cause above." in shown
    assert not [b for b in app.button if b.key == "health_reconcile"]
