"""A shared link opened first on a freshly started dashboard goes through the router (and its sign-in).

Streamlit runs a `pages/` folder as an old-style multipage app until the first st.navigation call in the
server's life; without backend/dashboard/server.py a first visit to /requests?id=... would run the page
alone: no sidebar, no navigation, no sign-in.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import LocalStack
from tests.seed import seed_every_state

WAIT_MS = 30_000


@pytest.mark.browser
def test_a_deep_link_is_the_first_visit(local_stack: LocalStack, browser: Browser, ddb: Any) -> None:
    failed_id = seed_every_state(ddb, local_stack.settings.table, int(time.time() * 1000))["failed"][0]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{local_stack.dashboard_url}/requests?id={failed_id}")  # nobody has loaded / before
        expect(page.get_by_role("heading", name="Request detail")).to_be_visible(timeout=WAIT_MS)
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_text("Connected to")).to_be_visible(timeout=WAIT_MS)  # drawn by dashboard.py
        expect(sidebar.get_by_text("Local default: operator", exact=False)).to_be_visible(timeout=WAIT_MS)
        expect(page.locator('[data-testid="stSidebarNav"]').get_by_text("Health")).to_be_visible()
    finally:
        context.close()
