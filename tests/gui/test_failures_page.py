"""The Failures page (AppTest of the real dashboard) against DynamoDB Local, with requests failed and retried
through the real trigger twin and processor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from streamdesk_processor import item as attr
from streamlit.testing.v1 import AppTest

from backend.local.trigger import Trigger
from backend.operations import Pipeline
from backend.roles import Actor, Role
from backend.settings import Settings
from backend.template import Template
from tests.gui.conftest import RunPage, clear_streamlit_caches, metrics, texts
from tests.processor_events import put_pending_item, read_item
from tests.rollups_seed import seed_rollups

PAGE = "pages/failures.py"
FAIL_ONCE_AT_CHARGE = {"simulate": {"fail": "card declined for order 4711", "failAtStep": 3, "failTimes": 1}}
PATTERN = "card declined for order <n>"


@pytest.fixture()
def trigger(app_env: Settings, template: Template) -> Iterator[Trigger]:
    with Trigger(app_env, template) as instance:
        yield instance


def failed(ddb: Any, settings: Settings, trigger: Trigger, n: int) -> tuple[list[str], str]:
    """``n`` requests failed by the processor at step 3 (charge), plus one of another cause."""
    ids = [
        put_pending_item(ddb, settings.table, {"order": 4700 + i, **FAIL_ONCE_AT_CHARGE}) for i in range(n)
    ]
    other = put_pending_item(ddb, settings.table, {"simulate": {"fail": "address unknown"}})
    trigger.poll_once()
    assert {read_item(ddb, settings.table, i)[attr.STATUS] for i in [*ids, other]} == {"FAILED"}
    seed_rollups(ddb, settings.table, settings.rollups_table, settings.rollups_shards)
    return ids, other


def group_key(settings: Settings) -> str:
    return next(g.key for g in Pipeline.connect(settings).failure_groups() if g.pattern == PATTERN)


def rerun(app: AppTest) -> AppTest:
    clear_streamlit_caches()  # read the table again, as "Refresh now" does
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def frame(app: AppTest, column: str) -> Any:
    """The first dataframe shown with this column (AppTest does not expose a dataframe's key)."""
    return next(d.value for d in app.dataframe if column in d.value.columns)


def report_rows(app: AppTest) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = frame(app, "outcome").to_dict("records")
    return rows


def test_groups_samples_and_a_group_retried_to_success(
    run_page: RunPage, ddb: Any, app_env: Settings, trigger: Trigger
) -> None:
    ids, other = failed(ddb, app_env, trigger, 3)
    key = group_key(app_env)

    app = run_page(PAGE)

    shown = texts(app)
    assert "4 failed request(s) in 2 group(s)" in shown
    groups = frame(app, "failed step(s)")
    row = groups[groups["group"] == key].iloc[0]
    assert (row["error type"], row["message"], row["open now"], row["failed step(s)"]) == (
        "BusinessError", PATTERN, 3, "charge (3)"
    )  # fmt: skip
    assert row["failed in range"] == 3  # from the rollups
    assert row["first seen"] != "—" and row["last seen"] != "—"
    numbers = metrics(app)
    assert numbers["Open failures"] == "4" and numbers["Failed in the last 1 day"] == "4"
    assert sorted(frame(app, "sample request")["sample request"]) == sorted(ids)

    # A sample opens with its body, error and traceback, as text.
    app.selectbox(key=f"fail_open_{key}").set_value(ids[0]).run()
    codes = [c.value for c in app.code]
    assert any('"order": 4700' in c for c in codes)
    assert any("card declined for order 4711" in c and '"step": "charge"' in c for c in codes)
    assert any("Traceback (most recent call last)" in c for c in codes)

    # The whole group: a confirm step first; nothing changes until it is confirmed.
    app.button(key=f"fail_retry_group_{key}").click().run()
    assert "Retry 3 request(s) (the whole group" in texts(app)
    assert {read_item(ddb, app_env.table, i)[attr.STATUS] for i in ids} == {"FAILED"}
    app.button(key=f"fail_confirm_{key}").click().run()
    assert not app.exception, [e.value for e in app.exception]

    rows = report_rows(app)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert {r["outcome"] for r in rows} == {"redriven"}
    assert {read_item(ddb, app_env.table, i)[attr.STATUS] for i in ids} == {"PENDING"}
    assert read_item(ddb, app_env.table, ids[0])[attr.REDRIVEN_BY] == "local operator"

    trigger.poll_once()  # the trigger delivers the redrives' MODIFY records
    seed_rollups(ddb, app_env.table, app_env.rollups_table, app_env.rollups_shards)
    rerun(app)

    assert metrics(app)["Succeeded since"] == "3"
    assert {r["status now"] for r in report_rows(app)} == {"SUCCEEDED"}
    for request_id in ids:
        steps = read_item(ddb, app_env.table, request_id)[attr.STEPS]
        # validate and reserve were done on attempt 1 and not repeated; the retry resumed at charge.
        assert {name: int(s["attempt"]) for name, s in steps.items()} == {
            "validate": 1, "reserve": 1, "charge": 2, "notify": 2,
        }  # fmt: skip
    assert read_item(ddb, app_env.table, other)[attr.STATUS] == "FAILED"
    assert "1 failed request(s) in 1 group(s)" in texts(app)
    # The group retried to success is open no more; its three failures stay counted in the range.
    assert key not in set(frame(app, "failed step(s)")["group"])
    closed = next(
        d.value
        for d in app.dataframe
        if "failed in range" in d.value.columns and "open now" not in d.value.columns
    )
    assert closed.to_dict("records") == [
        {"group": key, "error type": "BusinessError", "message": PATTERN, "failed in range": 3}
    ]
    assert metrics(app)["Open failures"] == "1" and metrics(app)["Failed in the last 1 day"] == "4"


def test_a_retry_of_a_request_no_longer_failed_changes_nothing(
    run_page: RunPage, ddb: Any, app_env: Settings, trigger: Trigger
) -> None:
    ids, _ = failed(ddb, app_env, trigger, 2)
    key = group_key(app_env)
    app = run_page(PAGE)
    app.multiselect(key=f"fail_select_{key}").set_value([ids[0]]).run()
    app.button(key=f"fail_retry_selected_{key}").click().run()
    assert "Retry 1 request(s) (1 selected" in texts(app)

    # Meanwhile someone else retried it and it succeeded.
    Pipeline.connect(app_env).retry([ids[0]], Actor("someone else", Role.OPERATOR))
    trigger.poll_once()
    before = read_item(ddb, app_env.table, ids[0])
    assert before[attr.STATUS] == "SUCCEEDED"

    app.button(key=f"fail_confirm_{key}").click().run()

    [row] = report_rows(app)
    assert (row["id"], row["outcome"], row["detail"]) == (ids[0], "not failed", "status is SUCCEEDED")
    assert read_item(ddb, app_env.table, ids[0]) == before
    assert read_item(ddb, app_env.table, ids[1])[attr.STATUS] == "FAILED"  # not selected: untouched


def test_one_request_is_retried_from_its_sample_without_confirmation(
    run_page: RunPage, ddb: Any, app_env: Settings, trigger: Trigger
) -> None:
    ids, _ = failed(ddb, app_env, trigger, 2)
    key = group_key(app_env)
    app = run_page(PAGE)
    app.selectbox(key=f"fail_open_{key}").set_value(ids[1]).run()
    app.button(key=f"fail_retry_one_{key}").click().run()
    assert not app.exception, [e.value for e in app.exception]
    [row] = report_rows(app)
    assert (row["id"], row["outcome"]) == (ids[1], "redriven")
    assert [read_item(ddb, app_env.table, i)[attr.STATUS] for i in ids] == ["FAILED", "PENDING"]


def test_no_failures(run_page: RunPage) -> None:
    app = run_page(PAGE)
    assert "No failed requests." in texts(app)
    assert not [b for b in app.button if b.key and b.key.startswith("fail_")]
