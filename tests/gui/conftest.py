"""AppTest fixtures: the real dashboard (dashboard.py with its router) pointed at a test table of the
suite's DynamoDB Local through STREAMDESK_* variables, with Streamlit's caches emptied around each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Element

from backend.dashboard.sign_in import PASSWORD_ATTEMPTS
from backend.settings import Settings
from backend.template import PROJECT_ROOT

DASHBOARD = PROJECT_ROOT / "dashboard.py"
DEFAULT_PAGE = "pages/overview.py"
# Rendering a page (Plotly figures included) takes a few seconds on a busy 2-core machine.
RUN_TIMEOUT = 60.0

# Every variable that could point the app elsewhere than the test table (a developer's shell may set them).
_POINTERS = (
    "STREAMDESK_STACK",
    "STREAMDESK_DYNAMODB_ENDPOINT",
    "STREAMDESK_API_URL",
    "STREAMDESK_HOST",
    "STREAMDESK_REFRESH_SECONDS",
    "STREAMDESK_PAGE_SIZE",
    "STREAMDESK_STUCK_AFTER_SECONDS",
    "STREAMDESK_EXPIRING_HORIZON_HOURS",
    "STREAMDESK_TIME_INDEX_SHARDS",
)


def clear_streamlit_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture()
def app_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Points the dashboard at the test table (and an API port nothing listens on, unless a test says
    otherwise); yields the test's settings."""
    for name in _POINTERS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMDESK_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(settings.dynamodb_port))
    monkeypatch.setenv("STREAMDESK_TABLE", settings.table)
    monkeypatch.setenv("STREAMDESK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("STREAMDESK_API_KEY", settings.api_key)
    monkeypatch.setenv("STREAMDESK_API_PORT", "9")  # discard port: nothing answers there
    monkeypatch.setenv(
        "STREAMDESK_SQS_PORT", str(settings.sqs_port)
    )  # the test's own (a twin if it runs one)
    clear_streamlit_caches()
    PASSWORD_ATTEMPTS.reset()  # one limiter per server process: each test starts with a full budget
    yield settings
    clear_streamlit_caches()
    PASSWORD_ATTEMPTS.reset()


RunPage = Callable[..., AppTest]
CountStream = Callable[[], int]


@pytest.fixture()
def count_stream(ddb: Any, dynamodb_endpoint: str, settings: Settings) -> Iterator[CountStream]:
    """The test's rollups table (created now, empty) and a function that runs the real rollups consumer
    over the requests table's stream so far: the overview reads rollups, as the rollups mapping keeps
    them."""
    from tests.rollups_workload import count_stream, create_rollups_table

    create_rollups_table(ddb, settings.rollups_table)
    yield lambda: count_stream(ddb, dynamodb_endpoint, settings.table, settings.rollups_table)
    ddb.delete_table(TableName=settings.rollups_table)


@pytest.fixture()
def run_page(app_env: Settings) -> RunPage:
    """Runs the dashboard and shows one page: ``run_page("pages/requests.py", id="...")``."""

    def run(page: str = DEFAULT_PAGE, *, session: dict[str, Any] | None = None, **query: str) -> AppTest:
        app = AppTest.from_file(str(DASHBOARD), default_timeout=RUN_TIMEOUT)
        for key, value in (session or {}).items():
            app.session_state[key] = value
        if page != DEFAULT_PAGE:
            # Before the first run AppTest finds a page by its file name, which is also its url_path here.
            # (After a switch AppTest keeps only the page's elements, not the entry script's sidebar.)
            app.switch_page(page)
        app.query_params.update(query)
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return run


def texts(app: AppTest) -> str:
    """Every plain text the page shows (markdown, captions, messages, code, text), one per line."""
    parts: list[str] = []
    for kind in (
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "code",
        "text",
        "title",
        "subheader",
    ):
        parts.extend(str(value_of(element)) for element in app.get(kind))
    return "\n".join(parts)


def value_of(node: Element | Block) -> Any:
    """What an element shows (AppTest types ``get()`` results as elements or blocks)."""
    return getattr(node, "value", None)


def metrics(app: AppTest) -> dict[str, str]:
    """Metric label -> value as shown."""
    return {m.label: m.value for m in app.metric}
