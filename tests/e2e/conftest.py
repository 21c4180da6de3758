"""The whole local stack for a browser: DynamoDB Local (suite fixture), the API twin, the stream trigger (in
a thread), the rollups consumer's trigger and the dashboard (each started as ``make up`` starts it, in a
subprocess), and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from backend.dashboard import server as dashboard_server
from backend.local.chromium import CHROMIUM, CHROMIUM_ARGS
from backend.local.dynamodb_local import client as dynamodb_client
from backend.local.dynamodb_local import free_port
from backend.local.local_template import local_template
from backend.local.slow_lane_stack import slow_lane_in_process
from backend.local.table import ensure_table
from backend.local.trigger import run_trigger
from backend.settings import Settings
from backend.template import PROJECT_ROOT, ROLLUPS_FUNCTION_ID, ROLLUPS_TABLE_ID, Template
from tests.api_fixtures import running_api

SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
DASHBOARD_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class LocalStack:
    settings: Settings  # what the dashboard was started with
    api_url: str
    dashboard_url: str


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's Chromium. Missing is a failure, not a skip: the browser test is part of `make test`."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(`apt-get install -y chromium`, or `make browser`)."
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium_path: Path) -> Iterator[Browser]:
    instance = playwright.chromium.launch(
        executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture()
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + DASHBOARD_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the dashboard did not answer within {DASHBOARD_START_TIMEOUT:.0f}s")


@contextmanager
def _stack(
    settings: Settings, template: Template, tmp_path: Path, *, trigger_on: bool
) -> Iterator[LocalStack]:
    """API twin + (optionally) the processor's trigger + the rollups trigger + dashboard on free ports, all
    pointed at the test table (and its rollups table, created from the template as `make up` does)."""
    ensure_table(
        dynamodb_client(settings.dynamodb_url),
        settings.rollups_table,
        local_template(settings, template),
        ROLLUPS_TABLE_ID,
    )
    with contextlib.ExitStack() as parts:
        api_url = parts.enter_context(running_api(settings, template))
        if trigger_on:  # long requests (the Submit page's slow example) go to the slow lane, as under make up
            parts.enter_context(slow_lane_in_process(settings, template))
        stop = threading.Event()
        trigger = threading.Thread(
            target=run_trigger, args=(settings, template, stop), name="trigger", daemon=True
        )
        if trigger_on:
            trigger.start()
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("STREAMDESK_")} | {
            "STREAMDESK_DYNAMODB_PORT": str(settings.dynamodb_port),
            "STREAMDESK_SQS_PORT": str(settings.sqs_port),
            "STREAMDESK_TABLE": settings.table,
            "STREAMDESK_DATA_DIR": str(settings.data_dir),
            "STREAMDESK_API_KEY": settings.api_key,
            "STREAMDESK_API_URL": api_url,
            "STREAMDESK_SECRETS_FILE": str(tmp_path / "no-secrets.toml"),
            "STREAMDESK_REFRESH_SECONDS": "2",  # live enough to watch, calm enough to screenshot
        }
        log = tmp_path / "streamlit.log"
        command = dashboard_server.command("127.0.0.1", port)  # exactly as `make up` starts it
        with log.open("wb") as output:
            process = subprocess.Popen(  # a fixed command line
                command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        # The rollups consumer's mapping in a process of its own, as the supervisor runs component `rollups`
        # (each trigger's Lambda runtime sets its function's environment for the whole process). It runs
        # with the processor's trigger stopped too, as under `make up`: the overview reads what it counts.
        rollups_command = [sys.executable, "-m", "backend.cli", "trigger", "--function", ROLLUPS_FUNCTION_ID]
        rollups_log = tmp_path / "rollups-trigger.log"
        with rollups_log.open("wb") as output:
            rollups = subprocess.Popen(  # a fixed command line
                rollups_command, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log)
            yield LocalStack(settings=settings, api_url=api_url, dashboard_url=url)
        finally:
            for child in (process, rollups):
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            stop.set()
            if trigger_on:
                trigger.join(timeout=15)
            # DynamoDB Local's TTL sweeper reads every table left behind: leave none.
            dynamodb_client(settings.dynamodb_url).delete_table(TableName=settings.rollups_table)
            # The dashboard's log tells what went wrong when a page did not show what the test waited for.
            print(log.read_text(errors="replace")[-5000:])


@pytest.fixture()
def local_stack(settings: Settings, template: Template, tmp_path: Path) -> Iterator[LocalStack]:
    """API twin + trigger + dashboard on free ports, all pointed at the test table."""
    with _stack(settings, template, tmp_path, trigger_on=True) as stack:
        yield stack


@pytest.fixture()
def paused_stack(settings: Settings, template: Template, tmp_path: Path) -> Iterator[LocalStack]:
    """The same stack with the trigger stopped: accepted requests stay PENDING (to cancel them)."""
    with _stack(settings, template, tmp_path, trigger_on=False) as stack:
        yield stack
