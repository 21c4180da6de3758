"""The support workflow in the dashboard (AppTest of the real app against DynamoDB Local, failures made by
the real trigger twin and processor): resolve a group with a reason and watch the open counts drop and the
trail appear in the detail; show resolved failures on demand; cancel a pending request and add a note from
its detail; retry a resolved failure explicitly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from streamdesk_processor import item as attr
from streamdesk_processor.item import ResolveReason, Status
from streamlit.testing.v1 import AppTest

from backend.dashboard import controls
from backend.dashboard.formatting import md_escape
from backend.local.trigger import Trigger
from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api
from tests.gui.conftest import CountStream, RunPage, clear_streamlit_caches, metrics, texts
from tests.gui.test_failures_page import FAIL_ONCE_AT_CHARGE, failed, frame, group_key, report_rows
from tests.processor_events import put_pending_item, read_item

FAILURES = "pages/failures.py"
REQUESTS = "pages/requests.py"
SUBMIT = "pages/submit.py"
OPERATOR = "local operator"


@pytest.fixture()
def trigger(app_env: Settings, template: Template) -> Iterator[Trigger]:
    with Trigger(app_env, template) as instance:
        yield instance


def ok(app: AppTest) -> AppTest:
    assert not app.exception, [e.value for e in app.exception]
    return app


def detail(run_page: RunPage, request_id: str) -> AppTest:
    clear_streamlit_caches()
    return run_page(REQUESTS, id=request_id)


def timeline(app: AppTest) -> list[str]:
    return list(frame(app, "stage")["stage"])


def test_resolve_a_group_with_a_reason_the_counts_drop_and_the_trail_shows(
    run_page: RunPage, ddb: Any, app_env: Settings, trigger: Trigger, count_stream: CountStream
) -> None:
    ids, other = failed(ddb, app_env, trigger, 3)
    key = group_key(app_env)
    count_stream()  # the overview's open failures: the rollups' gauge
    assert metrics(run_page())["Failed (open)"] == "4"

    app = run_page(FAILURES)
    assert "4 failed request(s) in 2 group(s)" in texts(app)
    app.selectbox(key=f"fail_reason_{key}").set_value(ResolveReason.DUPLICATE).run()
    app.text_input(key=f"fail_note_{key}").input("TICKET-4711").run()
    ok(app.button(key=f"fail_resolve_group_{key}").click().run())
    assert "Resolve 3 request(s) (the whole group" in texts(app)
    assert {read_item(ddb, app_env.table, i)[attr.STATUS] for i in ids} == {"FAILED"}  # not yet confirmed
    ok(app.button(key=f"fail_confirm_{key}").click().run())

    assert {r["outcome"] for r in report_rows(app)} == {"resolved"}
    assert "Latest resolve" in texts(app)
    clear_streamlit_caches()
    ok(app.run())
    assert "1 failed request(s) in 1 group(s)" in texts(app)  # the group left the open failures
    assert key not in set(frame(app, "failed step(s)")["group"])
    count_stream()  # the resolves left FAILED: the gauge counts them down
    assert metrics(run_page())["Failed (open)"] == "1"

    stored = read_item(ddb, app_env.table, ids[0])
    assert stored[attr.STATUS] == Status.RESOLVED
    assert stored[attr.RESOLUTION][attr.RESOLUTION_BY] == OPERATOR
    assert read_item(ddb, app_env.table, other)[attr.STATUS] == Status.FAILED

    # Resolved failures are not shown by default, and are listed on demand.
    assert not [d for d in app.dataframe if "resolved" in d.value.columns]
    ok(app.toggle(key="fail_show_resolved").set_value(True).run())
    assert sorted(frame(app, "resolved")["id"]) == sorted(ids)
    assert "3 resolved failure(s)" in texts(app)

    shown = detail(run_page, ids[0])
    assert f"resolve by {OPERATOR}: duplicate: TICKET-4711" in timeline(shown)
    assert metrics(shown)["Status"] == Status.RESOLVED.value


def test_cancel_a_pending_request_and_add_a_note_from_its_detail(
    run_page: RunPage, ddb: Any, app_env: Settings
) -> None:
    request_id = put_pending_item(ddb, app_env.table, {"order": 1})
    app = detail(run_page, request_id)
    ok(app.text_input(key=f"detail_note_{request_id}").input("customer called, see TICKET-9").run())
    ok(app.button(key=f"detail_add_note_{request_id}").click().run())
    assert md_escape("note: noted") in texts(app)
    ok(app.button(key=f"detail_cancel_{request_id}").click().run())
    assert md_escape("cancel: cancelled") in texts(app)

    stored = read_item(ddb, app_env.table, request_id)
    assert stored[attr.STATUS] == Status.CANCELLED and attr.TTL in stored
    assert [e[attr.TRAIL_ACTION] for e in stored[attr.TRAIL]] == ["note", "cancel"]
    stages = timeline(detail(run_page, request_id))
    assert f"note by {OPERATOR}: customer called, see TICKET-9" in stages
    assert f"cancel by {OPERATOR}" in stages
    # Cancelled: nothing left to cancel or retry.
    keys = {b.key for b in detail(run_page, request_id).button}
    assert f"detail_cancel_{request_id}" not in keys and f"detail_retry_{request_id}" not in keys


def test_a_resolved_failure_is_retried_explicitly_from_its_detail(
    run_page: RunPage, ddb: Any, app_env: Settings, trigger: Trigger
) -> None:
    request_id = put_pending_item(ddb, app_env.table, {"order": 2, **FAIL_ONCE_AT_CHARGE})
    trigger.poll_once()
    app = detail(run_page, request_id)
    ok(app.button(key=f"detail_resolve_{request_id}").click().run())
    assert read_item(ddb, app_env.table, request_id)[attr.STATUS] == Status.RESOLVED

    app = detail(run_page, request_id)
    ok(app.button(key=f"detail_retry_{request_id}").click().run())
    assert md_escape("retry: redriven") in texts(app)
    trigger.poll_once()
    stored = read_item(ddb, app_env.table, request_id)
    assert stored[attr.STATUS] == Status.SUCCEEDED
    assert [e[attr.TRAIL_ACTION] for e in stored[attr.TRAIL]] == ["resolve", "reopen", "retry"]


@pytest.fixture()
def api_url(app_env: Settings, template: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real API twin on the test table; the dashboard is pointed at it."""
    with running_api(app_env, template) as url:
        monkeypatch.setenv("STREAMDESK_API_URL", url)
        yield url


def test_resubmit_as_new_prefills_the_form_and_links_both_ways(
    run_page: RunPage, api_url: str, ddb: Any, app_env: Settings
) -> None:
    body = '{"order": 77, "note": "it\'s a copy"}'
    original = put_pending_item(ddb, app_env.table, json.loads(body))
    stored_body = read_item(ddb, app_env.table, original)[attr.REQUEST]
    app = detail(run_page, original)
    ok(app.button(key=f"detail_resubmit_{original}").click().run())
    # The click switched to the submit page; AppTest's later runs need the page said again (the session,
    # which carries the copy of the body, is kept).
    ok(app.switch_page(SUBMIT).run())

    # The submit page, with a copy of the body and a word on what sending does.
    assert app.text_area(key=controls.KEY_BODY).value == stored_body
    assert "as a new request" in texts(app)
    ok(app.button(key="submit_send").click().run())
    copy = metrics(app)["Request id"]
    assert copy and copy != original
    assert "both details link to each other" in texts(app)

    assert read_item(ddb, app_env.table, copy)[attr.REQUEST] == stored_body  # a new request, same body
    assert read_item(ddb, app_env.table, copy)[attr.RESUBMITTED_FROM] == original
    assert read_item(ddb, app_env.table, original)[attr.RESUBMITTED_AS] == {copy}
    links = {link.label for link in detail(run_page, original).get("page_link")}
    assert md_escape(f"Resubmitted as {copy}") in links
    links = {link.label for link in detail(run_page, copy).get("page_link")}
    assert md_escape(f"Resubmitted from {original}") in links

    # The form is a plain one again: the next send is not linked to anything.
    app.text_area(key=controls.KEY_BODY).set_value('{"order": 78}').run()
    ok(app.button(key="submit_send").click().run())
    third = metrics(app)["Request id"]
    assert attr.RESUBMITTED_FROM not in read_item(ddb, app_env.table, third)
