"""The API twin in several processes on one listening socket, as API Gateway scales out (one Python
process serves from one core at most).

``streamdesk api`` (what ``make up`` runs) forks ``STREAMDESK_API_WORKERS`` workers (default 2) after
binding the port; the kernel spreads connections over them. Each worker builds its own app, event loop and
client to DynamoDB. A worker that dies stops the others and the parent fails loudly (the supervisor sees the
API exit); the workers die with the parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Final

log = logging.getLogger(__name__)

WORKERS_VARIABLE: Final = "STREAMDESK_API_WORKERS"
DEFAULT_WORKERS: Final = 2
MAX_WORKERS: Final = 32
_PR_SET_PDEATHSIG: Final = 1


def worker_count(environ: Mapping[str, str] = os.environ) -> int:
    """``STREAMDESK_API_WORKERS``, 1 to 32; ValueError with the variable's name otherwise."""
    raw = environ.get(WORKERS_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_WORKERS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise ValueError(f"{WORKERS_VARIABLE} must be a whole number from 1 to {MAX_WORKERS}, got {raw!r}")
    return int(raw)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound socket the workers share (IPPROTO_TCP so that asyncio sets TCP_NODELAY on connections)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def serve_forked(
    serve_one: Callable[[socket.socket], None], sock: socket.socket, workers: int, stop: threading.Event
) -> None:
    """Fork ``workers`` processes that each run ``serve_one(sock)``; return once ``stop`` is set (the
    workers get SIGTERM and are waited for). Must be called before the process starts threads."""
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: serve until SIGTERM (its copy of ``stop`` is set by the same handler)
            code = 0
            try:
                _die_with_parent()
                serve_one(sock)
            except BaseException:
                log.exception("API worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    log.info("API twin: %d worker processes %s", workers, children)
    try:
        while not stop.is_set():
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                children.remove(pid)
                raise RuntimeError(f"API worker {pid} exited ({os.waitstatus_to_exitcode(status)})")
            stop.wait(0.2)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
