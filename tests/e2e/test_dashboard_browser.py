"""The dashboard in a real browser against the whole local stack: every page renders, a request sent from
the form travels API -> table -> stream -> function and shows up SUCCEEDED, its detail opens by URL, and a
body holding a <script> is shown as text and never runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect

from tests.e2e.conftest import LocalStack
from tests.seed import seed_every_state

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
SUCCEED_WITHIN_MS = 45_000
SCRIPT = "<script>alert(1)</script>"


def _metric(page: Page, label: str) -> Locator:
    """The value of the metric whose label is exactly ``label`` ("Status" is not "HTTP status")."""
    label_element = page.locator('[data-testid="stMetricLabel"]').get_by_text(label, exact=True)
    return (
        page.locator('[data-testid="stMetric"]')
        .filter(has=label_element)
        .first.locator('[data-testid="stMetricValue"]')
    )


def _shoot(page: Page, path: Path) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main area, so the viewport is made as
    tall as the content first."""
    height = page.evaluate(
        "() => Math.max(800, ...[...document.querySelectorAll("
        "'[data-testid=stMain], [data-testid=stMainBlockContainer]')].map(e => e.scrollHeight))"
    )
    width = page.viewport_size["width"] if page.viewport_size else 1500
    page.set_viewport_size({"width": width, "height": min(int(height) + 80, 6000)})
    page.wait_for_timeout(500)  # let charts re-lay themselves out to the new size
    # Auto-refresh re-runs parts of the page; Streamlit greys out what is being redrawn meanwhile.
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=WAIT_MS)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": width, "height": 1100})


def _settle(page: Page) -> None:
    """Waits for Streamlit to finish the current run (its status widget shows while running)."""
    page.wait_for_load_state("networkidle")
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=WAIT_MS)


def test_every_page_and_a_request_end_to_end(
    local_stack: LocalStack, browser: Browser, ddb: Any, screenshots: Path
) -> None:
    seeded = seed_every_state(ddb, local_stack.settings.table, int(time.time() * 1000))
    dialogs: list[str] = []
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    page.on("dialog", lambda dialog: _record_and_dismiss(dialog, dialogs))
    base = local_stack.dashboard_url

    # Overview.
    page.goto(base + "/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=WAIT_MS)
    expect(_metric(page, "Pending now")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=WAIT_MS)
    _settle(page)
    _shoot(page, screenshots / "overview.png")

    # Requests list.
    page.goto(base + "/requests")
    expect(page.get_by_role("heading", name="Requests")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=WAIT_MS)
    _settle(page)
    _shoot(page, screenshots / "requests.png")

    # Selecting a row opens its detail below the list.
    page.get_by_label("Exact id").fill("failed-0")
    page.get_by_label("Exact id").press("Enter")
    grid = page.locator('[data-testid="stDataFrame"]').first
    expect(page.get_by_text("Page 1: requests 1 to 1, newest first", exact=False)).to_be_visible(
        timeout=WAIT_MS
    )
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)  # the first row's selection box, under the header
    expect(page.locator('[data-testid="stCode"]').filter(has_text="card declined").first).to_be_visible(
        timeout=WAIT_MS
    )
    expect(_metric(page, "Status")).to_have_text("FAILED")

    # A body holding a <script>: shown as text in the detail, never run.
    html_id = seeded["html"][0]
    page.goto(f"{base}/requests?id={html_id}")
    expect(page.locator('[data-testid="stCode"]').filter(has_text=SCRIPT).first).to_be_visible(
        timeout=WAIT_MS
    )
    _settle(page)
    _shoot(page, screenshots / "detail-html-body.png")

    # Submit through the form; follow it live until it succeeded.
    page.goto(base + "/submit")
    expect(page.get_by_role("heading", name="Submit a request")).to_be_visible(timeout=WAIT_MS)
    body = page.get_by_label("Body (a JSON object)")
    body.fill('{"order": 42, "from": "the browser test"}')
    page.get_by_role("button", name="Send").click()
    expect(_metric(page, "HTTP status")).to_have_text("202", timeout=WAIT_MS)
    request_id = _metric(page, "Request id").inner_text().strip()
    assert request_id and request_id != "—"
    expect(_metric(page, "Status")).to_have_text("SUCCEEDED", timeout=SUCCEED_WITHIN_MS)
    _settle(page)
    _shoot(page, screenshots / "submit.png")

    # Its detail, opened through the URL.
    page.goto(f"{base}/requests?id={request_id}")
    expect(page.get_by_role("heading", name="Request detail")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator('[data-testid="stCode"]').filter(has_text=request_id).first).to_be_visible(
        timeout=WAIT_MS
    )
    expect(_metric(page, "Status")).to_have_text("SUCCEEDED", timeout=WAIT_MS)
    expect(page.locator('[data-testid="stCode"]').filter(has_text="the browser test").first).to_be_visible()
    _settle(page)
    _shoot(page, screenshots / "detail.png")

    assert dialogs == [], f"a script ran in the page: {dialogs}"
    assert page.locator("script", has_text="alert(1)").count() == 0
    context.close()


def _record_and_dismiss(dialog: Dialog, seen: list[str]) -> None:
    """An alert() would mean a body's <script> ran: record it (the test fails) and close it."""
    seen.append(dialog.message)
    dialog.dismiss()
