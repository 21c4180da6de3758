"""``make up``: run the whole local stack as child processes, with logs prefixed per component.

DynamoDB Local starts first (data kept under the data dir), the table is created or updated from the
template, then the API twin, the trigger twin and the dashboard start. Ctrl-C stops all of them in reverse
order; if one dies on its own the supervisor says so loudly and stops the rest (a half-running pipeline
would accept requests that nothing processes).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO

import httpx

from backend import dashboard_server
from backend.local import dynamodb_local
from backend.local.local_template import local_template
from backend.local.private_files import PRIVATE_UMASK, secure_data_dir
from backend.local.table import ensure_table
from backend.settings import Settings
from backend.template import PROJECT_ROOT

_COLOURS = {"dynamodb": "34", "api": "32", "trigger": "35", "dashboard": "36", "stack": "33"}
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
        Component("api", _python_component("api"), _tcp_ready(host, settings.api_port)),
        Component("trigger", _python_component("trigger"), lambda c: _trigger_reports(settings, c)),
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


def _trigger_reports(settings: Settings, component: Component) -> bool:
    """Ready once the trigger has written its state file from this process (not a stale one)."""
    from backend.trigger_status import read_trigger_state

    state = read_trigger_state(settings)
    if not state or component.process is None:
        return False
    return bool(state.get("pid") == component.process.pid)


def _check_ports(settings: Settings) -> None:
    for what, port in (
        ("DynamoDB Local", settings.dynamodb_port),
        ("the API", settings.api_port),
        ("the dashboard", settings.dashboard_port),
    ):
        if port_in_use(settings.host, port):
            raise StackError(
                f"port {port} for {what} is in use on {settings.host}: is another `make up` running? "
                "Stop it, or choose other ports (STREAMDESK_DYNAMODB_PORT, STREAMDESK_API_PORT, "
                "STREAMDESK_DASHBOARD_PORT)."
            )


def _wait(component: Component, timeout: float, stopping: threading.Event) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping.is_set():  # Ctrl-C during start-up stops at once
        if component.exit_code is not None:
            raise StackError(f"{component.name} exited with code {component.exit_code} while starting")
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
            f"  API        {url}   PUT /requests, GET /requests/{{id}}",
            f"  API key    {key}   (header x-api-key; {key_source(settings)})",
            f"  DynamoDB   {settings.dynamodb_url}   table {settings.table}",
            f"  Data       {settings.data_dir}",
            "Try:",
            f"  curl -s -X PUT {url}/requests -H 'x-api-key: {key}' -H 'content-type: application/json' "
            "-d '{\"order\": 1}'",
            f"  curl -s {url}/requests/<id> -H 'x-api-key: {key}'",
            "",
        ]
    )


def run_stack(settings: Settings) -> int:
    """Start everything, wait for Ctrl-C or a death; returns the exit code for ``make up``."""
    say = _Printer("stack").line
    _check_ports(settings)
    dynamodb_local.find_jar()  # fail before starting anything if the install is incomplete
    dynamodb_local.java_command()
    os.umask(PRIVATE_UMASK)  # what this process and its children create is the owner's alone
    secure_data_dir(settings.data_dir)
    _ = settings.api_key  # generated now, once, so that every child reads the same file

    stopping = threading.Event()
    components = build_components(settings)

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started: list[Component] = []
    code = 0
    try:
        for component in components:
            component.start()
            started.append(component)
            _wait(component, timeout=120 if component.name == "dynamodb" else 60, stopping=stopping)
            if component.name == "dynamodb" and not stopping.is_set():
                client = dynamodb_local.client(settings.dynamodb_url)
                try:
                    ensure_table(client, settings.table, local_template(settings))
                except Exception as error:  # said in one line; the stack cannot run without its table
                    problem = f"the table {settings.table} could not be made ready: {error}"
                    raise StackError(problem) from error
                say(f"table {settings.table} matches infra/template.yaml")
            if stopping.is_set():
                break
        if not stopping.is_set():
            print(banner(settings), flush=True)
        while not stopping.is_set():
            for component in started:
                if component.exit_code is not None:
                    say("!" * 78)
                    say(f"!!! {component.name} DIED (exit code {component.exit_code}); stopping the stack.")
                    say("!!! Requests may be accepted but not processed while a part is down.")
                    say("!" * 78)
                    code = 1
                    stopping.set()
                    break
            stopping.wait(0.5)
    except StackError as error:
        say(f"!!! {error}")
        code = 1
    finally:
        say("stopping ...")
        for component in reversed(started):
            component.stop()
            say(f"{component.name} stopped")
    return code
