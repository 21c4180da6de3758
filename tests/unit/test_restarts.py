"""The supervisor's restart policy: how a death is described, the backoff, the crash loop, the state file;
and the watch loop itself on real (tiny) child processes."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import pytest

from backend.local.restarts import (
    GAVE_UP,
    RESTARTING,
    RUNNING,
    RestartPolicy,
    describe_exit,
)
from backend.local.supervisor import RESTARTS_FILE, Component, _watch
from backend.settings import Settings
from backend.stack_restarts import ComponentRestarts, StackRestarts, read_restarts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-signal.SIGSEGV, "killed by SIGSEGV"),
        (1, "exited with code 1"),
        (0, "exited with code 0"),
    ],
)
def test_a_death_is_described_truly(code: int, words: str) -> None:
    assert describe_exit(code) == words


def test_backoff_doubles_and_a_crash_loop_gives_up_with_the_reason(tmp_path: Path) -> None:
    clock = Clock()
    policy = RestartPolicy(tmp_path / "restarts.json", ["api"], clock=clock, wall_ms=lambda: 5)
    delays = []
    for _ in range(4):
        verdict = policy.died("api", -signal.SIGKILL)
        assert verdict.restart
        delays.append(verdict.delay)
        policy.restarted("api", 123)
        clock.now += 1
    assert delays == [0.5, 1.0, 2.0, 4.0]
    final = policy.died("api", 2)
    assert not final.restart
    assert final.reason.startswith("api died 5 times within 60 s (last: exited with code 2)")
    state = json.loads((tmp_path / "restarts.json").read_text())
    assert state["components"]["api"]["restarts"] == 4
    assert state["components"]["api"]["state"] == GAVE_UP
    assert state["stoppedBecause"] == final.reason


def test_deaths_far_apart_are_not_a_crash_loop(tmp_path: Path) -> None:
    clock = Clock()
    policy = RestartPolicy(tmp_path / "restarts.json", ["trigger"], clock=clock)
    for _ in range(10):
        verdict = policy.died("trigger", -signal.SIGKILL)
        assert verdict.restart and verdict.delay == 0.5  # each death is the first in its window
        policy.restarted("trigger", 1)
        clock.now += 61
    state = json.loads((tmp_path / "restarts.json").read_text())["components"]["trigger"]
    assert state["restarts"] == 10 and state["state"] == RUNNING
    assert state["lastExit"] == "killed by SIGKILL"


def test_the_state_file_shows_a_component_being_restarted(tmp_path: Path) -> None:
    assert read_restarts(tmp_path) is None
    policy = RestartPolicy(tmp_path / RESTARTS_FILE, ["dynamodb", "api"])
    policy.started("dynamodb", 10)
    policy.started("api", 11)
    policy.died("dynamodb", -signal.SIGKILL)
    state = read_restarts(tmp_path)
    assert state is not None
    assert state.component("dynamodb").state == RESTARTING
    assert state.component("dynamodb").pid is None
    assert state.component("api") == ComponentRestarts(
        name="api",
        restarts=0,
        state=RUNNING,
        pid=11,
        last_exit=None,
        last_exit_at=None,
        last_restart_at=None,
        deaths_in_window=0,
    )
    raw = json.loads((tmp_path / RESTARTS_FILE).read_text())
    assert raw["components"]["api"] == {
        "restarts": 0,
        "state": "running",
        "pid": 11,
        "lastExit": None,
        "lastExitAt": None,
        "lastRestartAt": None,
        "deathsInWindow": 0,
    }  # the contract of docs/internal-contracts.md
    assert StackRestarts.from_json(raw) == state


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "{not json",
        '{"startedAt": 1, "updatedAt": 2}',
        '{"startedAt": 1, "updatedAt": 2, "components": {"api": {"state": "asleep"}}}',
        '{"startedAt": "soon", "updatedAt": 2, "components": {}}',
    ],
)
def test_a_restart_file_that_is_not_the_supervisors_is_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / RESTARTS_FILE
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ValueError, match=r"restart file|not JSON"):
        read_restarts(tmp_path)
    assert path.read_text() == text  # left as it was for a person to look at


def _component(name: str, code: str) -> Component:
    return Component(name, [sys.executable, "-c", code], lambda _c: True)


def test_the_watch_restarts_a_dead_child_and_stops_on_a_crash_loop(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", STREAMDESK_API_KEY="k" * 20)
    steady = _component("steady", "import time; time.sleep(60)")
    flaky = _component("flaky", "import sys; sys.exit(3)")
    policy = RestartPolicy(tmp_path / "restarts.json", ["steady", "flaky"], give_up_after=3)
    stopping = threading.Event()
    for component in (steady, flaky):
        component.start()
    try:
        assert _watch([steady, flaky], settings, policy, stopping) == 1
        assert steady.exit_code is None  # the healthy one was left alone
    finally:
        steady.stop()
    state = json.loads((tmp_path / "restarts.json").read_text())
    assert state["components"]["flaky"]["restarts"] == 2
    assert state["components"]["flaky"]["state"] == GAVE_UP
    assert state["components"]["steady"]["restarts"] == 0
    assert "flaky died 3 times within 60 s (last: exited with code 3)" in state["stoppedBecause"]
