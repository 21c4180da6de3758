"""The submit page: validation, sending through the real API twin, following, and the API's failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from backend.dashboard import controls, formatting
from backend.samples import SAMPLES
from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api
from tests.gui.conftest import RunPage, metrics, texts

SUBMIT = "pages/submit.py"


@pytest.fixture()
def api_url(app_env: Settings, template: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real API twin on the test table; the dashboard is pointed at it."""
    with running_api(app_env, template) as url:
        monkeypatch.setenv("STREAMDESK_API_URL", url)
        yield url


def _send(app: AppTest, body: str) -> AppTest:
    app.text_area(key=controls.KEY_BODY).set_value(body).run()
    return app.button(key="submit_send").click().run()


def _editor(app: AppTest) -> str:
    return str(app.text_area(key=controls.KEY_BODY).value)


def _items(ddb: Any, table_name: str) -> list[dict[str, Any]]:
    return list(ddb.scan(TableName=table_name)["Items"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"order": 42', "The body is not valid JSON: "),
        ("[1, 2]", "The body must be a JSON object ({...}), not a list."),
        ('"text"', "The body must be a JSON object ({...}), not a str."),
        ("   ", "The body is empty: write a JSON object"),
    ],
)
def test_invalid_bodies_are_refused_before_sending(
    run_page: RunPage, api_url: str, ddb: Any, table_name: str, body: str, message: str
) -> None:
    app = _send(run_page(SUBMIT), body)
    [error] = app.error
    assert error.value.startswith(message)
    assert not app.metric  # no HTTP status: nothing was sent
    assert _items(ddb, table_name) == []


def test_a_valid_body_is_sent_through_the_api_and_followed(
    run_page: RunPage, api_url: str, ddb: Any, table_name: str
) -> None:
    body = '{"order": 42, "note": "it\'s <b>sent</b> from the form"}'
    app = _send(run_page(SUBMIT), body)
    assert not app.error
    shown = metrics(app)
    assert shown["HTTP status"] == "202"
    request_id = shown["Request id"]
    assert request_id and request_id != formatting.NO_VALUE
    assert shown["Acknowledged in"].endswith(("ms", "s"))
    # Stored by the API (never written by the page), body exactly as typed.
    [item] = _items(ddb, table_name)
    assert item["id"]["S"] == request_id
    assert item["request"]["S"] == body
    # Followed through GET /requests/{id}: no trigger runs in this test, so it stays PENDING.
    assert shown["Status"] == "PENDING"
    assert "Checking again every 1 s until it finishes…" in texts(app)
    # Listed among what this browser sent, with a link to its detail.
    sent = app.dataframe[0].value
    assert list(sent["id"]) == [request_id]
    assert list(sent["HTTP"]) == [202]
    assert list(sent["detail"]) == [f"requests?id={request_id}"]


def test_following_stops_while_auto_refresh_is_paused(run_page: RunPage, api_url: str) -> None:
    app = _send(run_page(SUBMIT, session={controls.KEY_PAUSED: True}), '{"order": 42}')
    assert metrics(app)["Status"] == "PENDING"
    shown = texts(app)
    assert "Auto-refresh is paused: use Refresh now in the sidebar to check again." in shown
    assert "Checking again every" not in shown


def test_every_send_is_listed_newest_first(run_page: RunPage, api_url: str) -> None:
    app = run_page(SUBMIT)
    first = metrics(_send(app, '{"order": 1}'))["Request id"]
    second = metrics(_send(app, '{"order": 2}'))["Request id"]
    assert first != second
    assert list(app.dataframe[0].value["id"]) == [second, first]


def test_examples_fill_the_editor(run_page: RunPage) -> None:
    app = run_page(SUBMIT)
    assert json.loads(_editor(app)) == next(iter(SAMPLES.values()))
    app.selectbox(key=controls.KEY_EXAMPLE).set_value(
        "fails once, then succeeds on the automatic retry"
    ).run()
    assert json.loads(_editor(app)) == {
        "order": 44,
        "simulate": {"fail": "gateway timeout", "transient": True, "failTimes": 1},
    }
    for name in ("fails", "slow (1.5 s of work)"):
        app.selectbox(key=controls.KEY_EXAMPLE).set_value(name).run()
        assert json.loads(_editor(app)) == SAMPLES[name]


def test_a_wrong_key_is_a_plain_403_message(
    run_page: RunPage, api_url: str, monkeypatch: pytest.MonkeyPatch, ddb: Any, table_name: str
) -> None:
    monkeypatch.setenv("STREAMDESK_API_KEY", "not-the-key")
    app = _send(run_page(SUBMIT), '{"order": 42}')
    assert metrics(app)["HTTP status"] == "403"
    assert [e.value for e in app.error] == [
        "The API refused the key (403 Forbidden): check STREAMDESK_API_KEY."
    ]
    assert not app.dataframe  # nothing listed as sent
    assert "Nothing sent yet in this session." in texts(app)
    assert _items(ddb, table_name) == []


def test_an_unreachable_api_is_a_plain_error(run_page: RunPage) -> None:
    app = _send(run_page(SUBMIT), '{"order": 42}')  # the fixture points the API at port 9: nothing there
    [error] = app.error
    assert error.value.startswith("The API at http://127.0.0.1:9 cannot be reached: ")
    assert "Traceback" not in texts(app)
