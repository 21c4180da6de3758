"""``make up``: run the whole local stack as child processes, with logs prefixed per component.

DynamoDB Local starts first (data kept under the data dir), the table is created or updated from the
template, then the API twin, the trigger twin and the dashboard start. Ctrl-C stops all of them in reverse
order. A component that dies on its own is restarted with a backoff and a message that says how it died
and what that means meanwhile; one that keeps dying (a crash loop, see :mod:`backend.local.restarts`)
stops the stack with the reason. Restart counts go to ``<data dir>/stack/restarts.json`` for the dashboard.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from backend.dashboard import server as dashboard_server
from backend.local import dynamodb_local
from backend.local.local_template import local_template
from backend.local.private_files import PRIVATE_UMASK, secure_data_dir
from backend.local.restarts import RestartPolicy, describe_exit
from backend.local.table import ensure_table
from backend.local.trigger_files import trigger_files
from backend.settings import Settings
from backend.slow_work_state import SlowWorkState
from backend.stack_restarts import RESTARTS_FILE
from backend.template import FUNCTION_ID, PROJECT_ROOT, ROLLUPS_FUNCTION_ID, ROLLUPS_TABLE_ID, TABLE_ID
from backend.trigger_state import TriggerState

_COLOURS = {
    "dynamodb": "34", "sqs": "94", "api": "32", "trigger": "35", "slow-work": "91", "rollups": "95",
    "dashboard": "36", "stack": "33",
}  # fmt: skip
# What a component's absence means while it is being restarted (said with its death).
WHILE_DOWN = {
    "dynamodb": "the API answers 503 (nothing stored); the trigger waits for the table, spending no retries",
    "api": "clients cannot connect; a PUT cut off may have been stored: retry it with its Idempotency-Key",
    "trigger": "requests are accepted and wait in the stream; the trigger resumes from its checkpoint",
    "rollups": "the rollups fall behind (records wait in the stream); it resumes from its own checkpoint",
    "sqs": "long requests run in the stream (they cannot be handed off); the queued ones are on disk",
    "slow-work": "handed-off requests wait in the queue; one it was running comes back after the "
    "visibility timeout and resumes after its last completed step",
    "dashboard": "the dashboard is unavailable; the pipeline is not affected",
}
_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """The stack could not start (a port in use, a missing install, a component that died)."""


def _die_with_parent() -> None:
    """Runs in each child before exec: if the supervisor is killed outright, the child gets SIGTERM."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: Ctrl-C still stops everything through the supervisor
        pass


class _Printer:
    """Writes one component's lines with a coloured, aligned prefix; one lock keeps lines whole."""

    lock = threading.Lock()

    def __init__(self, name: str, stream: IO[str] = sys.stdout) -> None:
        colour = _COLOURS.get(name, "0")
        tag = f"[{name}]".ljust(12)
        self.prefix = f"\033[{colour}m{tag}\033[0m" if stream.isatty() else tag
        self.stream = stream

    def line(self, text: str) -> None:
        with self.lock:
            self.stream.write(f"{self.prefix}{text.rstrip()}\n")
            self.stream.flush()


@dataclass
class Component:
    """One child process of the stack."""

    name: str
    command: Sequence[str]
    ready: Callable[[Component], bool]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        printer = _Printer(self.name)
        printer.line("starting: " + " ".join(self.command[:4]) + (" ..." if len(self.command) > 4 else ""))
        self.process = subprocess.Popen(  # commands built here, not from user input
            list(self.command),
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
            preexec_fn=_die_with_parent,  # no threads in the child before exec
        )
        stdout = self.process.stdout
        assert stdout is not None
        threading.Thread(target=self._pump, args=(stdout, printer), daemon=True).start()

    @staticmethod
    def _pump(stdout: IO[str], printer: _Printer) -> None:
        for text in stdout:
            printer.line(text)

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _tcp_ready(host: str, port: int) -> Callable[[Component], bool]:
    return lambda _component: port_in_use(host, port)


def _http_ready(url: str) -> Callable[[Component], bool]:
    def probe(_component: Component) -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    return probe


def _python_component(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "backend.cli", name, *args]


def build_components(settings: Settings) -> list[Component]:
    """The stack's processes in start order (DynamoDB Local first)."""
    host = settings.host
    db_dir = settings.data_dir / "dynamodb"
    return [
        Component(
            "dynamodb",
            dynamodb_local.build_command(settings.dynamodb_port, db_path=db_dir),
            lambda _component: _dynamodb_answers(settings),
        ),
        Component("sqs", _python_component("sqs"), _tcp_ready(host, settings.sqs_port)),
        Component("api", _python_component("api"), _tcp_ready(host, settings.api_port)),
        Component(
            "trigger",
            _python_component("trigger", "--function", FUNCTION_ID),
            lambda c: _state_written_by(trigger_files(settings, FUNCTION_ID).state, c),
        ),
        Component(
            "slow-work",
            _python_component("slow-work"),
            lambda c: _slow_work_state_written_by(settings.slow_work_state_path, c),
        ),
        Component(
            "rollups",
            _python_component("trigger", "--function", ROLLUPS_FUNCTION_ID),
            lambda c: _state_written_by(trigger_files(settings, ROLLUPS_FUNCTION_ID).state, c),
        ),
        Component(
            "dashboard",
            dashboard_server.command(host, settings.dashboard_port),
            _http_ready(f"{settings.dashboard_url}/_stcore/health"),
        ),
    ]  # fmt: skip


def _dynamodb_answers(settings: Settings) -> bool:
    try:
        dynamodb_local.client(settings.dynamodb_url, timeout=1.0).list_tables(Limit=1)
    except Exception:  # not up yet
        return False
    return True


def _state_written_by(state_file: Path, component: Component) -> bool:
    """Ready once a trigger has written its state file from this process (not a stale one)."""
    try:
        state = TriggerState.from_json(json.loads(state_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError):  # not there yet, half written, or not a state
        return False
    return component.process is not None and state.pid == component.process.pid


def _slow_work_state_written_by(state_file: Path, component: Component) -> bool:
    try:
        state = SlowWorkState.from_json(json.loads(state_file.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False
    return component.process is not None and state.pid == component.process.pid


def _check_ports(settings: Settings) -> None:
    for what, port in (
        ("DynamoDB Local", settings.dynamodb_port),
        ("the SQS twin", settings.sqs_port),
        ("the API", settings.api_port),
        ("the dashboard", settings.dashboard_port),
    ):
        if port_in_use(settings.host, port):
            raise StackError(
                f"port {port} for {what} is in use on {settings.host}: is another `make up` running? "
                "Stop it, or choose other ports (STREAMDESK_DYNAMODB_PORT, STREAMDESK_API_PORT, "
                "STREAMDESK_DASHBOARD_PORT, STREAMDESK_SQS_PORT)."
            )


def _wait(component: Component, timeout: float, stopping: threading.Event) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping.is_set():  # Ctrl-C during start-up stops at once
        if component.exit_code is not None:
            raise StackError(f"{component.name} {describe_exit(component.exit_code)} while starting")
        if component.ready(component):
            return
        time.sleep(0.2)
    raise StackError(f"{component.name} was not ready within {timeout:.0f} s")


def key_source(settings: Settings) -> str:
    """Where the API key came from, as the banner says it."""
    if settings.api_key_value:
        return "from STREAMDESK_API_KEY (environment or secrets.toml), not stored by Streamdesk"
    return f"generated once, kept in {settings.data_dir / 'api-key'}"


def banner(settings: Settings) -> str:
    key = settings.api_key
    url = settings.api_base_url
    return "\n".join(
        [
            "",
            "Streamdesk is up (Ctrl-C stops everything).",
            f"  Dashboard  {settings.dashboard_url}",
            f"  API        {url}   PUT /requests, GET and DELETE /requests/{{id}}",
            f"  API key    {key}   (header x-api-key; {key_source(settings)})",
            f"  DynamoDB   {settings.dynamodb_url}   table {settings.table}",
            f"  SQS        {settings.sqs_url}   the slow-work queue (SQS twin)",
            f"  Data       {settings.data_dir}",
            "Try:",
            f"  curl -s -X PUT {url}/requests -H 'x-api-key: {key}' -H 'content-type: application/json' "
            "-d '{\"order\": 1}'",
            f"  curl -s {url}/requests/<id> -H 'x-api-key: {key}'",
            "",
        ]
    )


def _start(component: Component, settings: Settings, stopping: threading.Event) -> None:
    """Start one component and wait until it serves (DynamoDB Local: and the table matches the template)."""
    component.start()
    _wait(component, timeout=120 if component.name == "dynamodb" else 60, stopping=stopping)
    if component.name == "dynamodb" and not stopping.is_set():
        _ensure_tables(settings)


def _ensure_tables(settings: Settings) -> None:
    """The requests table and the rollups table, created or brought up to the template."""
    client = dynamodb_local.client(settings.dynamodb_url)
    template = local_template(settings)
    for name, logical_id in ((settings.table, TABLE_ID), (settings.rollups_table, ROLLUPS_TABLE_ID)):
        try:
            ensure_table(client, name, template, logical_id)
        except Exception as error:  # said in one line; the stack cannot run without its tables
            raise StackError(f"the table {name} could not be made ready: {error}") from error
        _Printer("stack").line(f"table {name} matches infra/template.yaml")


def _loud(lines: list[str]) -> None:
    say = _Printer("stack").line
    say("!" * 78)
    for text in lines:
        say(f"!!! {text}")
    say("!" * 78)


def _pid(component: Component) -> int | None:
    return component.process.pid if component.process is not None else None


def _restart(
    component: Component, settings: Settings, policy: RestartPolicy, stopping: threading.Event
) -> bool:
    """Handle one death: restart after the policy's backoff, or say why not. False: stop the stack."""
    returncode = component.exit_code
    assert returncode is not None
    how = describe_exit(returncode)
    verdict = policy.died(component.name, returncode)
    if not verdict.restart:
        _loud([f"{component.name} {how}: {verdict.reason}.", "Stopping the stack; see its log lines above."])
        return False
    _loud(
        [
            f"{component.name} {how}; restarting it in {verdict.delay:.1f} s ({verdict.reason}).",
            f"Meanwhile {WHILE_DOWN.get(component.name, 'it is unavailable')}.",
        ]
    )
    if stopping.wait(verdict.delay):
        return True
    try:
        _start(component, settings, stopping)
    except StackError as error:
        # A restart was made even if the child died again before it was ready: count it, so that the
        # count does not depend on which the watch saw first, the death or the failed readiness check.
        policy.restarted(component.name, None)
        _Printer("stack").line(f"!!! {component.name} did not come back: {error}; trying again")
        component.stop()  # counted as another death on the next look
        return True
    if not stopping.is_set():
        policy.restarted(component.name, _pid(component))
        restarts = policy.records[component.name].restarts
        _Printer("stack").line(f"{component.name} is back (restart {restarts} since `make up`)")
    return True


def _watch(
    started: list[Component], settings: Settings, policy: RestartPolicy, stopping: threading.Event
) -> int:
    """Until Ctrl-C: restart what dies. Returns ``make up``'s exit code (1 after a crash loop)."""
    while not stopping.is_set():
        for component in started:
            dead = component.exit_code is not None and not stopping.is_set()
            if dead and not _restart(component, settings, policy, stopping):
                return 1
        stopping.wait(0.5)
    return 0


def run_stack(settings: Settings) -> int:
    """Start everything, restart what dies, until Ctrl-C or a crash loop; returns ``make up``'s exit code."""
    say = _Printer("stack").line
    _check_ports(settings)
    try:  # fail before starting anything if the install is incomplete
        dynamodb_local.java_command()
        dynamodb_local.compiled_launcher(dynamodb_local.find_jar())
    except dynamodb_local.DynamoDBLocalError as error:
        raise StackError(str(error)) from error
    os.umask(PRIVATE_UMASK)  # what this process and its children create is the owner's alone
    secure_data_dir(settings.data_dir)
    _ = settings.api_key  # generated now, once, so that every child reads the same file

    stopping = threading.Event()
    components = build_components(settings)
    policy = RestartPolicy(settings.data_dir / RESTARTS_FILE, [c.name for c in components])

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started: list[Component] = []
    code = 0
    try:
        for component in components:
            started.append(component)
            _start(component, settings, stopping)
            policy.started(component.name, _pid(component))
            if stopping.is_set():
                break
        if not stopping.is_set():
            print(banner(settings), flush=True)
        code = _watch(started, settings, policy, stopping)
    except StackError as error:
        say(f"!!! {error}")
        policy.stopped_because = str(error)
        code = 1
    finally:
        say("stopping ...")
        for component in reversed(started):
            component.stop()
            say(f"{component.name} stopped")
        policy.stop("Ctrl-C" if code == 0 else None)
    return code
