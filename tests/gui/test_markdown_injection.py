"""Request data is shown as literal text, never as Markdown: no links or images smuggled into the
dashboard's own labels and messages by a request body, an error message or a shared URL."""

from __future__ import annotations

import time
from typing import Any

from streamdesk_processor.item import Status

from tests.gui.conftest import RunPage
from tests.seed import error_map, make_item, write_items

LINK = "[verify your card](https://evil.example/login)"
IMAGE = "![](https://evil.example/pixel.png)"


def _rendered(app: Any) -> list[str]:
    """Every label and message an element renders as Markdown."""
    found = [e.label for e in app.expander]
    for kind in ("warning", "error", "info", "success", "caption", "markdown"):
        found += [str(e.value) for e in getattr(app, kind)]
    return found


def test_an_error_message_cannot_become_a_link_on_the_failures_page(
    run_page: RunPage, ddb: Any, table_name: str
) -> None:
    now = int(time.time() * 1000)
    failed = make_item(
        id="evil-0", status=Status.FAILED, created_at=now - 60_000, started_at=now - 59_000,
        finished_at=now - 58_000, attempts=1, error=error_map(f"{LINK} {IMAGE}", step="charge"),
    )  # fmt: skip
    write_items(ddb, table_name, [failed])
    app = run_page("pages/failures.py")
    assert not app.exception
    labels = [e.label for e in app.expander]
    assert any("verify your card" in label for label in labels), labels
    for text in _rendered(app):
        assert "](https" not in text, text  # a raw link or image would render as one
    assert any(r"\[verify your card\]\(https\://evil\.example/login\)" in label for label in labels)


def test_an_id_from_the_url_cannot_become_a_link(run_page: RunPage) -> None:
    app = run_page("pages/requests.py", id=LINK)
    assert not app.exception
    warnings = [str(w.value) for w in app.warning]
    assert any("verify your card" in w for w in warnings), warnings
    assert all("](https" not in w for w in warnings), warnings
