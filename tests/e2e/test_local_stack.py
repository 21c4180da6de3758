"""`make up` as a new user runs it: the whole stack as child processes, driven over HTTP only.

A request answers 202 with an id and reaches SUCCEEDED quickly; a simulated failure reaches FAILED with its
message; nothing answers on another address of the machine and the data is private; Ctrl-C stops every
component; a restart keeps every request. (A component killed and restarted by the supervisor: the chaos
test, tests/e2e/test_chaos.py.)
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from backend.local.dynamodb_local import free_port
from backend.template import PROJECT_ROOT
from tests.network import answers, non_loopback_addresses, websocket_status

START_TIMEOUT_S = 120


@dataclass
class Stack:
    process: subprocess.Popen[str]
    api_url: str
    dashboard_url: str
    key: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _env(data_dir: Path, ports: dict[str, int], parameters: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMDESK_")}
    env.update(
        STREAMDESK_DATA_DIR=str(data_dir),
        STREAMDESK_API_PORT=str(ports["api"]),
        STREAMDESK_DYNAMODB_PORT=str(ports["dynamodb"]),
        STREAMDESK_DASHBOARD_PORT=str(ports["dashboard"]),
        STREAMDESK_SQS_PORT=str(ports.get("sqs") or free_port()),
        STREAMDESK_TABLE="streamdesk-e2e",
        STREAMDESK_TEMPLATE_PARAMETERS=json.dumps(parameters or {}),
        PYTHONUNBUFFERED="1",
    )
    return env


def start_stack(
    data_dir: Path, ports: dict[str, int], log: Path, parameters: dict[str, str] | None = None
) -> Stack:
    """``make up`` with these ports (and template parameter overrides, as `sam deploy` takes them)."""
    handle = log.open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "up"],
        cwd=PROJECT_ROOT,
        env=_env(data_dir, ports, parameters),
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while "Streamdesk is up" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"make up did not start:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.3)
    key = (data_dir / "api-key").read_text().strip()
    return Stack(
        process, f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['dashboard']}", key, log
    )


def stop_stack(stack: Stack) -> int:
    stack.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    return stack.process.wait(timeout=60)


def wait_final(client: httpx.Client, url: str, timeout: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(url).json()
        if body.get("status") in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.1)


@pytest.fixture()
def ports() -> dict[str, int]:
    return {"api": free_port(), "dynamodb": free_port(), "dashboard": free_port(), "sqs": free_port()}


@pytest.fixture()
def stack(tmp_path: Path, ports: dict[str, int]) -> Iterator[Stack]:
    running = start_stack(tmp_path / "data", ports, tmp_path / "up.log")
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def test_make_up_serves_processes_and_restarts_without_loss(
    stack: Stack, tmp_path: Path, ports: dict
) -> None:
    headers = {"x-api-key": stack.key}
    with httpx.Client(headers=headers, timeout=10) as client:
        accepted = client.put(f"{stack.api_url}/requests", json={"order": 1})
        assert accepted.status_code == 202, accepted.text
        request_id = accepted.json()["id"]
        assert accepted.json() == {"id": request_id, "status": "PENDING"}
        started = time.monotonic()
        done = wait_final(client, f"{stack.api_url}/requests/{request_id}")
        assert done["status"] == "SUCCEEDED", done
        # The bar is "within a second"; this only guards against a stuck pipeline on a loaded CI box.
        assert time.monotonic() - started < 10

        failing = client.put(f"{stack.api_url}/requests", json={"simulate": {"fail": "boom"}}).json()["id"]
        failed = wait_final(client, f"{stack.api_url}/requests/{failing}")
        assert failed["status"] == "FAILED"
        assert failed["error"]["message"] == "boom"  # type: ignore[index]

        # A long request goes through the slow lane (the SQS twin and the slow-work event source).
        slow = client.put(f"{stack.api_url}/requests", json={"simulate": {"delayMs": 1200}}).json()["id"]
        assert wait_final(client, f"{stack.api_url}/requests/{slow}", timeout=30)["status"] == "SUCCEEDED"
        assert "hand-off claimed" in stack.output()

        assert (
            client.put(f"{stack.api_url}/requests", headers={"x-api-key": "wrong"}, json={}).status_code
            == 403
        )
    health = httpx.get(f"{stack.dashboard_url}/_stcore/health", timeout=10)
    assert health.status_code == 200
    _only_loopback_answers(ports)
    _data_is_private(tmp_path / "data")

    assert stop_stack(stack) == 0
    output = stack.output()
    for component in ("dynamodb", "sqs", "api", "trigger", "slow-work", "dashboard"):
        assert f"{component} stopped" in output

    again = start_stack(tmp_path / "data", ports, tmp_path / "up2.log")
    try:
        with httpx.Client(headers=headers, timeout=10) as client:
            kept = client.get(f"{again.api_url}/requests/{request_id}").json()
            assert kept["status"] == "SUCCEEDED"
            assert client.get(f"{again.api_url}/requests/{failing}").json()["status"] == "FAILED"
    finally:
        assert stop_stack(again) == 0


def _child_pid(stack: Stack, needle: str) -> int:
    listing = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(stack.process.pid)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listing.splitlines():
        pid, _, args = line.strip().partition(" ")
        if needle in args:
            return int(pid)
    raise AssertionError(f"no child process running {needle!r}:\n{listing}")


def _only_loopback_answers(ports: dict[str, int]) -> None:
    """Every port of the stack refuses this machine's other addresses; the dashboard's websocket refuses a
    Host it does not know (DNS rebinding) and accepts its own."""
    outside = non_loopback_addresses()
    assert outside, "this machine has no non-loopback address to try (hostname -I)"
    for name, port in ports.items():
        assert answers("127.0.0.1", port), name
        assert [address for address in outside if answers(address, port)] == [], name
    dashboard = ports["dashboard"]
    assert websocket_status(dashboard, f"rebound.example:{dashboard}") == 403
    assert websocket_status(dashboard, f"127.0.0.1:{dashboard}") == 101
    assert websocket_status(dashboard, f"localhost:{dashboard}") == 101


def _data_is_private(data_dir: Path) -> None:
    """Bodies, the key and the database are readable by their owner only."""
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    assert any(path.suffix == ".db" for path in files), files
    exposed = [str(path) for path in files if stat.S_IMODE(path.stat().st_mode) & 0o077]
    assert exposed == []
