"""``streamdesk api`` in several worker processes: every worker serves the same contract on one port, and
stopping (or killing) the parent leaves no worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.local.api_workers import WORKERS_VARIABLE, worker_count
from backend.local.dynamodb_local import free_port
from backend.settings import Settings
from backend.template import PROJECT_ROOT


def test_worker_count_refuses_what_is_not_a_count() -> None:
    assert worker_count({}) == 2
    assert worker_count({WORKERS_VARIABLE: "3"}) == 3
    for bad in ("0", "-1", "two", "33"):
        with pytest.raises(ValueError, match=WORKERS_VARIABLE):
            worker_count({WORKERS_VARIABLE: bad})


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_workers_serve_the_api_and_go_with_the_parent(settings: Settings, how: signal.Signals) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        WORKERS_VARIABLE: "2",
        "STREAMDESK_API_PORT": str(port),
        "STREAMDESK_DYNAMODB_PORT": str(settings.dynamodb_port),
        "STREAMDESK_TABLE": settings.table,
        "STREAMDESK_DATA_DIR": str(settings.data_dir),
        "STREAMDESK_API_KEY": settings.api_key,
    }
    parent = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": settings.api_key}
        ) as http:
            while True:
                try:
                    answers = [http.put("/requests", json={"n": i}) for i in range(6)]
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the API workers did not start"
                    time.sleep(0.2)
            assert [a.status_code for a in answers] == [202] * 6
            assert all(http.get(f"/requests/{a.json()['id']}").json()["status"] == "PENDING" for a in answers)
        workers = _children(parent.pid)
        assert len(workers) == 2
        parent.send_signal(how)
        parent.wait(timeout=15)
        deadline = time.monotonic() + 15
        while not all(_gone(pid) for pid in workers):
            assert time.monotonic() < deadline, "a worker outlived the parent"
            time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
