"""Retry in a real browser against the whole local stack: a request sent through the API fails at its third
step, is retried from the Failures page (with the confirm step) and is seen SUCCEEDED there; the Health
page shows the running trigger and a stuck request. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from streamdesk_processor import item as attr

from backend.api_client import ApiClient
from backend.local.restarts import RestartPolicy
from backend.stack_restarts import RESTARTS_FILE
from tests.e2e.conftest import LocalStack
from tests.integration.test_health import abandoned_claim
from tests.processor_events import read_item

pytestmark = pytest.mark.browser

WAIT_MS = 30_000
SUCCEED_WITHIN_MS = 45_000
FAIL_ONCE = {
    "order": 4711,
    "simulate": {"fail": "card declined for order 4711", "failAtStep": 3, "failTimes": 1},
}


def _metric(page: Page, label: str) -> Locator:
    return (
        page.locator('[data-testid="stMetric"]')
        .filter(has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
        .first.locator('[data-testid="stMetricValue"]')
    )


def _settle_and_shoot(page: Page, path: Path) -> None:
    """Waits for the run to finish, then photographs the whole page (Streamlit scrolls inside its main
    area, so the viewport is made as tall as the content first)."""
    page.wait_for_load_state("networkidle")
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=WAIT_MS)
    height = page.evaluate(
        "() => Math.max(800, ...[...document.querySelectorAll("
        "'[data-testid=stMain], [data-testid=stMainBlockContainer]')].map(e => e.scrollHeight))"
    )
    width = page.viewport_size["width"] if page.viewport_size else 1500
    page.set_viewport_size({"width": width, "height": min(int(height) + 80, 6000)})
    expect(page.locator('[data-stale="true"]')).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=WAIT_MS)
    page.wait_for_timeout(800)  # tables draw on a canvas after the resize
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": width, "height": 1100})


def _wait_for_status(ddb: Any, table: str, request_id: str, status: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if read_item(ddb, table, request_id).get(attr.STATUS) == status:
            return
        time.sleep(0.2)
    raise AssertionError(
        f"{request_id} is {read_item(ddb, table, request_id).get(attr.STATUS)}, not {status}"
    )


def test_a_failed_request_is_retried_from_the_failures_page(
    local_stack: LocalStack, browser: Browser, ddb: Any, screenshots: Path
) -> None:
    table = local_stack.settings.table
    with ApiClient(local_stack.api_url, local_stack.settings.api_key) as api:
        sent = api.submit(FAIL_ONCE)
    assert sent.accepted and sent.id, sent
    request_id = sent.id
    _wait_for_status(ddb, table, request_id, "FAILED")
    abandoned_claim(ddb, table, "stuck-for-the-screenshot", int(time.time() * 1000))

    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    base = local_stack.dashboard_url

    page.goto(base + "/")  # as a person arrives; the entry script signs in and builds the navigation
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=WAIT_MS)
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar).to_contain_text("Local default: operator", timeout=WAIT_MS)
    sidebar.get_by_role("link", name="Failures").click()
    expect(page.get_by_role("heading", name="Failures")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("1 failed request(s) in 1 group(s)")).to_be_visible(timeout=WAIT_MS)
    page.get_by_role("button", name="Retry the whole group (1)").click()
    confirm = page.get_by_role("button", name="Confirm: retry 1")
    expect(confirm).to_be_visible(timeout=WAIT_MS)
    assert read_item(ddb, table, request_id)[attr.STATUS] == "FAILED"  # nothing before the confirmation
    _settle_and_shoot(page, screenshots / "failures.png")
    confirm.click()

    # The report follows the retried request live until it has succeeded.
    expect(page.get_by_text("Latest retry")).to_be_visible(timeout=WAIT_MS)
    expect(_metric(page, "Succeeded since")).to_have_text("1", timeout=SUCCEED_WITHIN_MS)
    stored = read_item(ddb, table, request_id)
    assert stored[attr.STATUS] == "SUCCEEDED"
    assert stored[attr.REDRIVEN_BY] == "local operator"
    assert {name: int(step["attempt"]) for name, step in stored[attr.STEPS].items()} == {
        "validate": 1, "reserve": 1, "charge": 2, "notify": 2,
    }  # fmt: skip
    _settle_and_shoot(page, screenshots / "failures-retried.png")

    # This stack runs without `make up`'s supervisor: its file is written by the supervisor's own policy.
    restarts = RestartPolicy(local_stack.settings.data_dir / RESTARTS_FILE, ["dynamodb", "api", "trigger"])
    for name in ("dynamodb", "api", "trigger"):
        restarts.started(name, 1)
    restarts.died("trigger", -9)
    restarts.restarted("trigger", 2)

    page.goto(base + "/health")
    expect(page.get_by_role("heading", name="Pipeline health")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("Table outages", exact=True)).to_be_visible(timeout=WAIT_MS)
    expect(_metric(page, "Outages waited out")).to_have_text("0", timeout=WAIT_MS)
    expect(page.get_by_text("Concurrency and shards", exact=True)).to_be_visible(timeout=WAIT_MS)
    expect(_metric(page, "Batches in flight")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("If it grows while the checkpoint stays put", exact=False)).to_be_visible(
        timeout=WAIT_MS
    )
    expect(page.get_by_role("heading", name="Local stack processes")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("killed by SIGKILL", exact=False).first).to_be_attached(timeout=WAIT_MS)
    expect(page.get_by_text("Trigger running", exact=False)).to_be_visible(timeout=WAIT_MS)
    # The stuck list is a data grid: it paints on a canvas and keeps its cells in an accessibility table,
    # which Playwright may see as hidden depending on scrolling; the cell being there is what counts.
    expect(page.get_by_text("processing claim never finished", exact=False).first).to_be_attached(
        timeout=WAIT_MS
    )
    expect(page.get_by_role("button", name="Reconcile (1)")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=WAIT_MS)
    _settle_and_shoot(page, screenshots / "health.png")
    context.close()
