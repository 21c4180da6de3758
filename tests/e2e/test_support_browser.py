"""The support workflow in a real browser against the whole local stack: a group of failures is resolved
with a reason (the confirm step, the open counts drop, the trail shows in the detail); with the trigger
stopped, one pending request is cancelled through ``DELETE /requests/{id}`` and another from its detail
(then resubmitted as new), and the overview counts both. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from streamdesk_processor import item as attr

from backend.api_client import ApiClient
from tests.e2e.conftest import LocalStack
from tests.e2e.test_retry_browser import WAIT_MS, _metric, _settle_and_shoot, _wait_for_status
from tests.processor_events import read_item

pytestmark = pytest.mark.browser

DUPLICATE = {"simulate": {"fail": "duplicate of order 4711"}}  # a permanent failure


def _open(page: Page, url: str, heading: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=WAIT_MS)


def test_a_group_of_failures_is_resolved_with_a_reason(
    local_stack: LocalStack, browser: Browser, ddb: Any, screenshots: Path
) -> None:
    table = local_stack.settings.table
    with ApiClient(local_stack.api_url, local_stack.settings.api_key) as api:
        ids = [api.submit({"order": n, **DUPLICATE}).id for n in range(2)]
    assert all(ids), ids
    for request_id in ids:
        assert request_id is not None
        _wait_for_status(ddb, table, request_id, "FAILED")

    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    base = local_stack.dashboard_url
    _open(page, base + "/", "Overview")
    expect(_metric(page, "Failed (open)")).to_have_text("2", timeout=WAIT_MS)

    _open(page, base + "/failures", "Failures")
    expect(page.get_by_text("2 failed request(s) in 1 group(s)")).to_be_visible(timeout=WAIT_MS)
    note = page.get_by_role("textbox", name=re.compile("^Note"))
    note.fill("merged by hand, T-42")
    note.press("Enter")
    page.get_by_role("button", name="Resolve the whole group (2)").click()
    confirm = page.get_by_role("button", name="Confirm: resolve 2")
    expect(confirm).to_be_visible(timeout=WAIT_MS)
    assert {read_item(ddb, table, i)[attr.STATUS] for i in ids} == {"FAILED"}  # nothing before confirming
    _settle_and_shoot(page, screenshots / "failures-resolve.png")
    confirm.click()

    expect(page.get_by_text("Latest resolve")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("No failed requests.")).to_be_visible(timeout=WAIT_MS)
    stored = read_item(ddb, table, ids[0])
    assert stored[attr.STATUS] == "RESOLVED"
    assert stored[attr.RESOLUTION][attr.RESOLUTION_NOTE] == "merged by hand, T-42"
    _settle_and_shoot(page, screenshots / "failures-resolved.png")

    _open(page, base + "/", "Overview")
    expect(_metric(page, "Failed (open)")).to_have_text("0", timeout=WAIT_MS)
    expect(_metric(page, "Resolved")).to_have_text("2", timeout=WAIT_MS)

    _open(page, f"{base}/requests?id={ids[0]}", "Request detail")
    # The timeline is a data grid (a canvas with an accessibility table): the cell being there counts.
    expect(
        page.get_by_text("resolve by local operator: fixed by hand: merged by hand, T-42").first
    ).to_be_attached(timeout=WAIT_MS)
    _settle_and_shoot(page, screenshots / "detail-resolved.png")
    context.close()


def test_pending_requests_are_cancelled_through_delete_and_from_the_dashboard(
    paused_stack: LocalStack, browser: Browser, ddb: Any, screenshots: Path
) -> None:
    table = paused_stack.settings.table
    with ApiClient(paused_stack.api_url, paused_stack.settings.api_key) as api:
        by_api, by_hand = (api.submit({"order": n}).id for n in range(2))
        assert by_api is not None and by_hand is not None
        answer = api.cancel(by_api)
        assert (answer.status_code, answer.status) == (200, "CANCELLED")

    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    base = paused_stack.dashboard_url
    _open(page, f"{base}/requests?id={by_hand}", "Request detail")
    expect(_metric(page, "Status")).to_have_text("PENDING", timeout=WAIT_MS)
    page.get_by_role("button", name="Cancel this request").click()
    expect(page.get_by_text("cancel: cancelled")).to_be_visible(timeout=WAIT_MS)
    expect(_metric(page, "Status")).to_have_text("CANCELLED", timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Cancel this request")).to_have_count(0, timeout=WAIT_MS)
    expect(page.get_by_text("cancel by local operator").first).to_be_attached(timeout=WAIT_MS)
    _settle_and_shoot(page, screenshots / "detail-cancelled.png")
    assert read_item(ddb, table, by_hand)[attr.STATUS] == "CANCELLED"

    # Changed their mind: resubmit it as a new request, linked both ways.
    page.get_by_role("button", name="Resubmit as new").click()
    expect(page.get_by_role("heading", name="Submit a request")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("as a new request", exact=False)).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("both details link to each other", exact=False)).to_be_visible(timeout=WAIT_MS)
    copies = read_item(ddb, table, by_hand)[attr.RESUBMITTED_AS]
    assert len(copies) == 1
    (copy,) = copies
    assert read_item(ddb, table, copy)[attr.REQUEST] == read_item(ddb, table, by_hand)[attr.REQUEST]
    assert read_item(ddb, table, copy)[attr.RESUBMITTED_FROM] == by_hand

    _open(page, f"{base}/requests?id={by_api}", "Request detail")
    expect(_metric(page, "Status")).to_have_text("CANCELLED", timeout=WAIT_MS)
    expect(page.get_by_text("cancel by api").first).to_be_attached(timeout=WAIT_MS)

    _open(page, base + "/", "Overview")
    expect(_metric(page, "Cancelled")).to_have_text("2", timeout=WAIT_MS)
    expect(_metric(page, "Pending now")).to_have_text("1", timeout=WAIT_MS)  # the resubmitted copy
    context.close()
