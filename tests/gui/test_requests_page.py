"""The requests page: list, filters, paging, detail (by selection and by ?id=), export, error states."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from backend.dashboard import controls, export, formatting
from backend.local.dynamodb_local import free_port
from backend.settings import Settings
from backend.store.models import RequestFilter
from backend.store.reader import RequestStore
from backend.template import PROJECT_ROOT
from tests.gui.conftest import RunPage, metrics, texts, value_of
from tests.seed import HTML, seed_every_state

REQUESTS = "pages/requests.py"


@pytest.fixture()
def seeded(ddb: Any, table_name: str) -> dict[str, list[str]]:
    return seed_every_state(ddb, table_name, int(time.time() * 1000))


def _ids(app: AppTest) -> list[str]:
    return list(app.dataframe[0].value["id"])


def _listed(seeded: dict[str, list[str]]) -> set[str]:
    # Every seeded request but the one without createdAt: it is in no index (reachable by id only).
    return {i for ids in seeded.values() for i in ids} - {"malformed-2"}


def test_lists_every_request_newest_first(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS)
    ids = _ids(app)
    assert set(ids) == _listed(seeded)
    assert len(ids) == len(_listed(seeded))
    # Seeded ages: processing 8 s, pending 10/20/30 s, succeeded 10-13 min, ..., html 55 min.
    assert ids[:5] == ["processing-0", "processing-1", "pending-0", "pending-1", "pending-2"]
    assert ids[-1] == "html-0"
    table = app.dataframe[0].value.set_index("id")
    assert table.loc["expired-0", "flags"] == "expired"
    assert table.loc["expiring-1", "flags"] == "expiring"
    assert table.loc["stuck_pending-0", "flags"] == "stuck"
    assert table.loc["failed-0", "error"] == "BusinessError card declined"
    assert table.loc["malformed-0", "status"] == "(missing)"
    assert "request" not in table.columns and "body" not in table.columns  # lists never show bodies


def test_filters_by_several_states(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS)
    app.multiselect(key="requests_states").set_value(["FAILED", "PROCESSING"]).run()
    expected = {*seeded["failed"], *seeded["html"], *seeded["processing"], *seeded["stuck_processing"]}
    assert set(_ids(app)) == expected
    assert len(_ids(app)) == len(expected)


def test_filters_by_exact_id_and_by_text(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS)
    app.text_input(key="requests_id").set_value("failed-1").run()
    assert _ids(app) == ["failed-1"]
    app.text_input(key="requests_id").set_value("").run()
    app.text_input(key="requests_text").set_value("insufficient stock").run()  # in an error message
    assert _ids(app) == ["failed-2"]
    app.text_input(key="requests_text").set_value("expiring-1").run()  # in a body
    assert _ids(app) == ["expiring-1"]


def test_filters_by_time_range(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS)
    app.radio(key="requests_range").set_value("15 minutes").run()
    assert set(_ids(app)) == {*seeded["pending"], *seeded["processing"], *seeded["succeeded"]}


def test_pages_forward_and_back(
    run_page: RunPage, seeded: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMDESK_PAGE_SIZE", "5")
    app = run_page(REQUESTS)
    pages = [_ids(app)]
    assert pages[0] == ["processing-0", "processing-1", "pending-0", "pending-1", "pending-2"]
    assert app.button(key="page_previous").disabled
    while not app.button(key="page_next").disabled:
        app.button(key="page_next").click().run()
        pages.append(_ids(app))
        assert 0 < len(pages[-1]) <= 5
        assert app.caption[0].value.startswith(f"Page {len(pages)}: requests {5 * len(pages) - 4} to ")
    seen = [i for page in pages for i in page]
    assert len(seen) == len(set(seen))  # no request on two pages
    assert set(seen) == _listed(seeded)  # and none missed
    assert len(pages) == 5  # 21 requests, 5 a page
    app.button(key="page_previous").click().run()
    assert _ids(app) == pages[-2]
    while not app.button(key="page_previous").disabled:
        app.button(key="page_previous").click().run()
    assert _ids(app) == pages[0]


def test_selecting_a_request_opens_its_detail(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS)
    app.selectbox(key=controls.KEY_SELECTED).set_value("failed-0").run()
    shown = texts(app)
    assert "card declined" in shown
    assert metrics(app)["Status"] == "FAILED"


def test_detail_by_url_shows_every_part(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS, id="failed-0")
    assert [t.value for t in app.title] == ["Request detail"]
    shown = metrics(app)
    assert shown["Status"] == "FAILED"
    assert shown["Attempts"] == "1"
    assert shown["Expires"] == "never"  # failed requests are kept
    assert shown["End to end"] == "700 ms"
    codes = [c.value for c in app.code]
    assert "failed-0" in codes
    body = json.loads(next(c for c in codes if '"customer"' in c))
    assert body["customer"] == "failed-0"
    error = json.loads(next(c for c in codes if '"message": "card declined"' in c))
    assert error == {
        "type": "BusinessError",
        "message": "card declined",
        "step": "charge",
        "transient": False,
    }
    assert any(
        c.startswith("Traceback (most recent call last):") and "BusinessError: card declined" in c
        for c in codes
    )
    attributes = json.loads(codes[-1])
    assert attributes["id"] == "failed-0" and attributes["status"] == "FAILED"
    timeline, steps = app.dataframe[0].value, app.dataframe[1].value
    assert list(timeline["stage"]) == [
        "accepted by the API",
        "processing started (attempt 1)",
        "step validate done (attempt 1)",
        "finished: FAILED",
    ]
    assert list(timeline["since accepted"]) == ["0 ms", "200 ms", "200 ms", "700 ms"]
    assert list(steps["step"]) == ["validate"]


def test_detail_shows_time_left_and_result(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS, id="expiring-0")
    # Seeded ttl: one hour after the seed's now, in whole seconds; the page reads a few seconds later.
    expires = metrics(app)["Expires"]
    assert expires == "in 1 h" or expires.startswith("in 59 min "), expires
    assert list(app.dataframe[2].value["value"]) == ["r-expiring-0"]
    assert "expiring" in texts(app)
    expired = run_page(REQUESTS, id="expired-1")
    assert metrics(expired)["Expires"].startswith("expired 10 min")


def test_script_in_a_body_is_text_in_a_code_element(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS, id="html-0")
    codes = [c.value for c in app.code]
    assert any(HTML in c and '"note"' in c for c in codes)  # the body
    assert any(f"bad input {HTML}" in c for c in codes)  # the error
    # Nowhere else: not in Markdown, captions or messages, which could render markup.
    others = [
        value_of(e) for kind in ("markdown", "caption", "info", "warning", "error") for e in app.get(kind)
    ]
    assert not any("<script" in str(value) for value in others)


def test_no_page_allows_raw_html() -> None:
    sources = [PROJECT_ROOT / "dashboard.py", *sorted((PROJECT_ROOT / "backend" / "dashboard").glob("*.py"))]
    sources += sorted((PROJECT_ROOT / "pages").glob("*.py"))
    for path in sources:
        text = Path(path).read_text(encoding="utf-8")
        assert "unsafe_allow_html" not in text, path
        assert "st.html(" not in text and "components.html" not in text, path


def test_malformed_items_are_shown_with_a_warning(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS, id="malformed-1")
    [warning] = app.warning
    assert warning.value.startswith("Some attributes are missing or have an unexpected type: ")
    assert metrics(app)["Status"] == "WEIRD"
    no_created = run_page(REQUESTS, id="malformed-2")
    assert f"Created {formatting.NO_VALUE}" in texts(no_created)
    assert metrics(no_created)["Status"] == "PENDING"


def test_unknown_id(run_page: RunPage, seeded: dict[str, list[str]], table_name: str) -> None:
    app = run_page(REQUESTS, id="no-such-request")
    # Shown as literal text: the id and the table name are escaped for Streamlit's Markdown.
    table = formatting.md_escape(table_name)
    shown = f"No request with id {formatting.md_escape('no-such-request')} in table {table}."
    assert [w.value for w in app.warning] == [shown]


def test_empty_table(run_page: RunPage, table_name: str) -> None:
    app = run_page(REQUESTS)
    assert [i.value for i in app.info] == [
        f"The table {table_name} is empty: no request has been sent yet. "
        "Send one from the Submit page, or run `make demo`."
    ]


def test_no_match_is_not_an_empty_table(run_page: RunPage, seeded: dict[str, list[str]]) -> None:
    app = run_page(REQUESTS)
    app.text_input(key="requests_text").set_value("nothing-has-this-word").run()
    assert [i.value for i in app.info] == ["No request matches this filter."]


def test_unreachable_dynamodb(run_page: RunPage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(free_port()))
    for app in (run_page(REQUESTS), run_page(REQUESTS, id="x")):
        [error] = app.error
        assert error.value.startswith("Cannot read the requests: DynamoDB at http://127.0.0.1:")
        assert "Traceback" not in texts(app)


def test_export_of_the_current_filter(
    run_page: RunPage, seeded: dict[str, list[str]], settings: Settings
) -> None:
    app = run_page(REQUESTS)
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == ["Export CSV", "Export JSON"]
    # What the buttons' deferred callables produce, for a filter on FAILED.
    store = RequestStore(settings)
    flt = RequestFilter(states=frozenset({"FAILED"}))
    rows = list(csv.DictReader(io.StringIO(export.export_csv(store.export(flt)).decode())))
    assert {row["id"] for row in rows} == {*seeded["failed"], *seeded["html"]}
    html_row = next(row for row in rows if row["id"] == "html-0")
    assert HTML in html_row["request"] and HTML in html_row["errorMessage"]
    items = json.loads(export.export_json(store.export(flt)))
    assert {item["id"] for item in items} == {*seeded["failed"], *seeded["html"]}
    assert all("request" in item and item["status"] == "FAILED" for item in items)
