"""The ``streamdesk`` command: the local stack and its parts, sample traffic.

``make up`` runs ``streamdesk up``; the supervisor starts ``streamdesk api`` and ``streamdesk trigger`` as
children. Every subcommand reads its settings from the environment (``STREAMDESK_*``), see
``backend/settings.py``.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from backend.roles import Actor, Role
from backend.settings import Settings, load_settings
from backend.store.actions import ActionResult, Outcome
from backend.template import FUNCTION_ID, PROJECT_ROOT, ROLLUPS_FUNCTION_ID

if TYPE_CHECKING:
    from backend.operations import Pipeline


def _configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    # One line per call to DynamoDB Local would drown the access log and the trigger's batch lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)


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


def cmd_trigger(settings: Settings, args: argparse.Namespace) -> int:
    from backend.local.local_template import local_template
    from backend.local.trigger import run_trigger

    run_trigger(settings, local_template(settings), _stop_event_on_signals(), args.function)
    return 0


def cmd_sqs(settings: Settings, _args: argparse.Namespace) -> int:
    """The SQS twin, with the slow lane's queues from the template."""
    from backend.local.local_template import local_template
    from backend.local.sqs_queues import ensure_queues
    from backend.local.sqs_server import SqsServer
    from backend.local.sqs_store import QueueStore

    store = QueueStore(settings.sqs_database_path)
    names = ensure_queues(store, settings, local_template(settings))
    server = SqsServer(store, settings.host, settings.sqs_port, settings.region).start()
    print(f"SQS twin on {server.url}: queues {', '.join(names)} ({settings.sqs_database_path})", flush=True)
    _stop_event_on_signals().wait()
    server.stop()
    return 0


def cmd_slow_work(settings: Settings, _args: argparse.Namespace) -> int:
    """The slow lane's event source twin (polls the SQS twin, invokes SlowWorkFunction)."""
    from backend.local.local_template import local_template
    from backend.local.sqs_event_source import run_slow_work, wait_until_answering

    stop = _stop_event_on_signals()
    wait_until_answering(settings)
    run_slow_work(settings, local_template(settings), stop)
    return 0


def cmd_dashboard(settings: Settings, _args: argparse.Namespace) -> int:
    """Only the dashboard (for a deployed stack: STREAMDESK_STACK=name streamdesk dashboard)."""
    from backend.dashboard.server import command

    print(f"Dashboard on {settings.dashboard_url}", flush=True)
    return subprocess.call(command(settings.host, settings.dashboard_port), cwd=PROJECT_ROOT)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from backend.demo import run_demo

    return run_demo(settings, per_kind=args.count, wait_seconds=args.wait)


def _cli_actor(args: argparse.Namespace) -> Actor:
    """Whoever runs the command line holds the table's credentials: an operator, recorded by name."""
    name = args.actor or f"{getpass.getuser()}@{socket.gethostname()} (cli)"
    return Actor(name, Role.OPERATOR)


def _confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question} Not confirmed: add --yes to run without a terminal.", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _print_results(results: list[ActionResult]) -> None:
    for result in results:
        detail = f"  ({result.detail})" if result.detail else ""
        print(f"  {result.outcome.value:<14} {result.request_id}{detail}")
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    print(", ".join(f"{n} {outcome}" for outcome, n in counts.items()) or "nothing to do")


def _chosen_failures(pipeline: Pipeline, args: argparse.Namespace) -> list[str] | None:
    """The requests ``--id``, ``--error-group`` or ``--all-failed`` name (retry and resolve choose alike);
    None, said on stderr, for an error group with no failed request; [] (said) when nothing failed."""
    if args.id:
        return list(args.id)
    if args.error_group:
        ids = pipeline.failed_ids(args.error_group)
        if not ids:
            print(f"no failed requests in error group {args.error_group}", file=sys.stderr)
            return None
        return ids
    ids = pipeline.failed_ids()
    if not ids:
        print("no failed requests")
    return ids


def cmd_retry(settings: Settings, args: argparse.Namespace) -> int:
    from backend.operations import Pipeline

    pipeline = Pipeline.connect(settings)
    ids = _chosen_failures(pipeline, args)
    if not ids:
        return 0 if ids is not None else 1
    bulk = len(ids) > 1 or not args.id
    if bulk and not _confirm(f"Retry {len(ids)} failed request(s) on table {settings.table}?", args.yes):
        return 1
    results = pipeline.retry(ids, _cli_actor(args), on_batch=lambda batch: print(f"... {len(batch)} done"))
    _print_results(results)
    return 0 if all(r.outcome is not Outcome.ERROR for r in results) else 1


def cmd_resolve(settings: Settings, args: argparse.Namespace) -> int:
    """Close failures without retrying them; the same choice of requests and confirmation as ``retry``."""
    from backend.operations import Pipeline
    from backend.store.actions import resolution_input

    try:
        reason, note = resolution_input(args.reason, args.note)
    except ValueError as error:  # refused before anything is read or written
        print(f"streamdesk resolve: {error}", file=sys.stderr)
        return 2
    pipeline = Pipeline.connect(settings)
    ids = _chosen_failures(pipeline, args)
    if not ids:
        return 0 if ids is not None else 1
    bulk = len(ids) > 1 or not args.id
    question = f"Resolve {len(ids)} failed request(s) on table {settings.table} as {reason.value!r}?"
    if bulk and not _confirm(question, args.yes):
        return 1
    results = pipeline.resolve(
        ids, reason, note, _cli_actor(args), on_batch=lambda batch: print(f"... {len(batch)} done")
    )
    _print_results(results)
    return 0 if all(r.outcome is not Outcome.ERROR for r in results) else 1


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    """Cancel pending requests by id (each only if nothing has claimed it yet); more than one asks first."""
    from backend.operations import Pipeline

    ids = list(dict.fromkeys(args.id))
    if len(ids) > 1 and not _confirm(
        f"Cancel {len(ids)} pending request(s) on table {settings.table}?", args.yes
    ):
        return 1
    results = Pipeline.connect(settings).cancel(ids, _cli_actor(args))
    _print_results(results)
    return 0 if all(r.outcome is Outcome.CANCELLED for r in results) else 1


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from backend.operations import Pipeline

    pipeline = Pipeline.connect(settings)
    threshold = int(args.stuck_after * 1000) if args.stuck_after else None
    while True:
        stuck = pipeline.stuck(threshold)
        for entry in stuck:
            action = "hand back" if entry.fixed_by_reconcile else "leave"
            print(f"  {entry.summary.status:<10} {entry.summary.id}  idle {entry.idle_ms // 1000} s: "
                  f"{entry.reason.value} -> {action}")  # fmt: skip
        fixable = [s for s in stuck if s.fixed_by_reconcile]
        if not stuck:
            print("no stuck requests")
        elif fixable and _confirm(f"Hand back {len(fixable)} stuck request(s)?", args.yes or args.every):
            _print_results(pipeline.reconcile(_cli_actor(args), threshold))
        if not args.every:
            return 0
        time.sleep(args.every)


def cmd_rollups_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    """Recount the rollups of a range from the items; with --apply add what is missing."""
    from backend.clock import now_ms
    from backend.rollups.rebuild_command import require_closed_range, run_rebuild
    from backend.time_arguments import parse_time

    now = now_ms()
    try:
        since_ms = parse_time(args.since, now)
        until_ms = parse_time(args.until, now) if args.until else now
        if args.apply:
            require_closed_range(args.until, until_ms, now, allow_recent=args.allow_recent)
        return run_rebuild(settings, since_ms, until_ms, args.apply, print)
    except ValueError as error:
        print(f"streamdesk rollups rebuild: {error}", file=sys.stderr)
        return 2


def cmd_key(settings: Settings, _args: argparse.Namespace) -> int:
    print(settings.api_key)
    return 0


# These run the local stack (or its parts); with STREAMDESK_STACK set, `dashboard` resolves the stack itself.
_LOCAL_STACK_COMMANDS = (cmd_up, cmd_api, cmd_trigger, cmd_sqs, cmd_slow_work, cmd_dashboard)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamdesk", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run DynamoDB Local, the API, the trigger and the dashboard").set_defaults(
        func=cmd_up
    )
    sub.add_parser("api", help="run only the API twin").set_defaults(func=cmd_api)
    trigger = sub.add_parser("trigger", help="run only the trigger twin (stream poller) of one function")
    trigger.add_argument(
        "--function",
        default=FUNCTION_ID,
        choices=(FUNCTION_ID, ROLLUPS_FUNCTION_ID),
        help=f"the function whose stream mapping to run (default {FUNCTION_ID})",
    )
    trigger.set_defaults(func=cmd_trigger)
    sub.add_parser("sqs", help="run only the SQS twin (the slow-work queue)").set_defaults(func=cmd_sqs)
    sub.add_parser("slow-work", help="run only the slow lane's event source twin").set_defaults(
        func=cmd_slow_work
    )
    sub.add_parser("dashboard", help="run only the dashboard").set_defaults(func=cmd_dashboard)
    demo = sub.add_parser("demo", help="send sample requests through the API, through every state")
    demo.add_argument("--count", type=int, default=3, help="requests of each kind (default 3)")
    demo.add_argument("--wait", type=float, default=30.0, help="seconds to follow them (default 30)")
    demo.set_defaults(func=cmd_demo)
    sub.add_parser("key", help="print the API key (the deployed stack's with STREAMDESK_STACK)").set_defaults(
        func=cmd_key
    )
    retry = sub.add_parser("retry", help="retry (redrive) failed requests")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", help="a failed request's id (repeatable)")
    which.add_argument("--error-group", help="every failed request of this error group (its key)")
    which.add_argument("--all-failed", action="store_true", help="every failed request")
    retry.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    retry.add_argument("--as", dest="actor", help="name recorded as who retried (default user@host)")
    retry.set_defaults(func=cmd_retry)
    _add_resolve_and_cancel(sub)
    rec = sub.add_parser("reconcile", help="find stuck requests and hand back those a redrive can fix")
    rec.add_argument("--stuck-after", type=float, help="seconds idle before a request counts as stuck")
    rec.add_argument("--every", type=float, help="repeat every N seconds (implies --yes)")
    rec.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rec.add_argument("--as", dest="actor", help="name recorded as who reconciled (default user@host)")
    rec.set_defaults(func=cmd_reconcile)
    _add_rollups(sub)
    return parser


def _add_rollups(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from backend.time_arguments import FORMATS

    rollups = sub.add_parser("rollups", help="the rollups (counts and latency sketches from the stream)")
    what = rollups.add_subparsers(dest="rollups_command", required=True)
    rebuild = what.add_parser(
        "rebuild",
        help="recount a range from the items, say how far the rollups differ; --apply adds what is missing",
    )
    rebuild.add_argument("--since", required=True, help=f"start of the range: {FORMATS}")
    rebuild.add_argument("--until", help="end of the range (default now), same forms")
    rebuild.add_argument("--apply", action="store_true", help="add the missing figures (else only report)")
    rebuild.add_argument(
        "--allow-recent",
        action="store_true",
        help="with --apply: allow an --until within the last 15 minutes (only once the health page shows "
        "the rollups consumer caught up: a record it has yet to count would be counted twice)",
    )
    rebuild.set_defaults(func=cmd_rollups_rebuild)


def _add_resolve_and_cancel(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from streamdesk_processor.item import ResolveReason

    resolve = sub.add_parser("resolve", help="close failed requests without retrying them")
    which = resolve.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", help="a failed request's id (repeatable)")
    which.add_argument("--error-group", help="every failed request of this error group (its key)")
    which.add_argument("--all-failed", action="store_true", help="every failed request")
    resolve.add_argument("--reason", required=True, choices=[r.value for r in ResolveReason], help="why")
    resolve.add_argument("--note", default="", help="free text, e.g. a ticket (needed with --reason other)")
    resolve.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    resolve.add_argument("--as", dest="actor", help="name recorded as who resolved (default user@host)")
    resolve.set_defaults(func=cmd_resolve)
    cancel = sub.add_parser("cancel", help="cancel pending requests that nothing has claimed yet")
    cancel.add_argument("--id", action="append", required=True, help="a pending request's id (repeatable)")
    cancel.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    cancel.add_argument("--as", dest="actor", help="name recorded as who cancelled (default user@host)")
    cancel.set_defaults(func=cmd_cancel)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    settings = load_settings()
    if settings.stack and args.func not in _LOCAL_STACK_COMMANDS:
        # A deployed stack: its outputs say which table, API and key (retry/reconcile/demo act on it).
        from backend.deployed.stack import StackError, resolve_settings

        try:
            settings = resolve_settings(settings)
        except StackError as error:
            print(f"streamdesk: {error}", file=sys.stderr)
            return 1
    from backend.roles import PermissionDenied
    from backend.store.calls import StoreUnavailable

    try:
        code: int = args.func(settings, args)
    except (StoreUnavailable, PermissionDenied) as error:  # said plainly, not as a traceback
        print(f"streamdesk {args.command}: {error}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
