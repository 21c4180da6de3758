"""The ``streamdesk`` command: the local stack and its parts, sample traffic.

``make up`` runs ``streamdesk up``; the supervisor starts ``streamdesk api`` and ``streamdesk trigger`` as
children. Every subcommand reads its settings from the environment (``STREAMDESK_*``), see
``backend/settings.py``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from backend.settings import Settings, load_settings
from backend.template import PROJECT_ROOT


def _configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )


def _stop_event_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def cmd_up(settings: Settings, _args: argparse.Namespace) -> int:
    from backend.local.supervisor import StackError, run_stack

    try:
        return run_stack(settings)
    except StackError as error:
        print(f"streamdesk up: {error}", file=sys.stderr)
        return 1


def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    from backend.local.api_server import serve
    from backend.local.local_template import local_template

    serve(settings, local_template(settings), stop=_stop_event_on_signals())
    return 0


def cmd_trigger(settings: Settings, _args: argparse.Namespace) -> int:
    from backend.local.local_template import local_template
    from backend.local.trigger import run_trigger

    run_trigger(settings, local_template(settings), _stop_event_on_signals())
    return 0


def cmd_dashboard(settings: Settings, _args: argparse.Namespace) -> int:
    """Only the dashboard (for a deployed stack: STREAMDESK_STACK=name streamdesk dashboard)."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "dashboard.py"),
        "--server.port", str(settings.dashboard_port),
        "--server.address", settings.host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    print(f"Dashboard on {settings.dashboard_url}", flush=True)
    return subprocess.call(command, cwd=PROJECT_ROOT)  # fixed command


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from backend.demo import run_demo

    return run_demo(settings, per_kind=args.count, wait_seconds=args.wait)


def cmd_key(settings: Settings, _args: argparse.Namespace) -> int:
    print(settings.api_key)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamdesk", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run DynamoDB Local, the API, the trigger and the dashboard").set_defaults(
        func=cmd_up
    )
    sub.add_parser("api", help="run only the API twin").set_defaults(func=cmd_api)
    sub.add_parser("trigger", help="run only the trigger twin (stream poller)").set_defaults(func=cmd_trigger)
    sub.add_parser("dashboard", help="run only the dashboard").set_defaults(func=cmd_dashboard)
    demo = sub.add_parser("demo", help="send sample requests through the API, through every state")
    demo.add_argument("--count", type=int, default=3, help="requests of each kind (default 3)")
    demo.add_argument("--wait", type=float, default=30.0, help="seconds to follow them (default 30)")
    demo.set_defaults(func=cmd_demo)
    sub.add_parser("key", help="print the local API key").set_defaults(func=cmd_key)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    settings = load_settings()
    code: int = args.func(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
