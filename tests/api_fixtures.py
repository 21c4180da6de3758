"""A running API twin for tests: the real uvicorn server in a thread, on a free port, stopped cleanly.

with running_api(settings, template) as base_url:
    httpx.put(f"{base_url}/requests", ...)
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from backend.local.api_server import serve
from backend.settings import Settings
from backend.template import Template


@contextmanager
def running_api(settings: Settings, template: Template, startup_timeout: float = 15.0) -> Iterator[str]:
    """Start the API twin for ``settings`` (its table and DynamoDB) and yield its base URL."""
    # Bind here and hand the socket over: no window in which another process can take the port.
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so (else Nagle adds
    # ~40 ms to every response).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, 0))
    port = sock.getsockname()[1]
    ready = threading.Event()
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            serve(settings, template, ready=ready, stop=stop, sock=sock)
        except BaseException as error:  # reported to the test below
            failures.append(error)
        finally:
            ready.set()  # never leave the waiter hanging

    thread = threading.Thread(target=run, name=f"api-twin-{port}", daemon=True)
    thread.start()
    try:
        if not ready.wait(startup_timeout) or failures:
            raise RuntimeError(f"the API twin did not start: {failures[0] if failures else 'timeout'}")
        yield f"http://{settings.host}:{port}"
    finally:
        stop.set()
        thread.join(timeout=15)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("the API twin did not stop within 15 s")
