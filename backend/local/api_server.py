"""The API twin's entry: API Gateway's REST API for one machine, read from ``infra/template.yaml``, served.

An ASGI app (starlette, served by uvicorn, from one process or forked workers: ``api_workers``) that does
what API Gateway does with the template's API. The parts: ``api_pipeline`` (route, API key, payload limit,
content type, validation, mapping templates, integration response, gateway responses, access log),
``api_integration`` (the SigV4-signed DynamoDB call), ``api_context`` (``$context``), ``apigateway`` (the
API as the template defines it) and ``vtl`` (the Velocity engine).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.routing import Route as StarletteRoute

from backend.local.api_pipeline import ApiGatewayTwin
from backend.local.api_workers import listening_socket, serve_forked, worker_count
from backend.settings import Settings
from backend.template import Template

_HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def create_app(settings: Settings, template: Template) -> Starlette:
    """The API twin as an ASGI app (the template is parsed and its VTL compiled here, once)."""
    gateway = ApiGatewayTwin(settings, template)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.close()

    app = Starlette(
        routes=[StarletteRoute("/{path:path}", gateway.handle, methods=_HTTP_METHODS)], lifespan=lifespan
    )
    app.state.gateway = gateway
    return app


def serve(
    settings: Settings,
    template: Template,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    *,
    sock: socket.socket | None = None,
) -> None:
    """Run the API twin with uvicorn on ``settings.host:settings.api_port`` (or a bound ``sock``).

    Blocks until ``stop`` is set (or, in the main thread, until Ctrl-C). ``ready`` is set once the
    server accepts connections. Raises RuntimeError if it cannot listen. Without ``sock`` (the command
    line), it serves from ``STREAMDESK_API_WORKERS`` processes (backend.local.api_workers).
    """
    workers = worker_count()
    if sock is not None or workers == 1:
        _serve_one(settings, template, ready, stop, sock)
        return
    try:
        shared = listening_socket(settings.host, settings.api_port)
    except OSError as error:
        raise RuntimeError(f"the API could not listen on {settings.host}:{settings.api_port}") from error
    stopping = stop or threading.Event()
    with shared:
        serve_forked(lambda s: _serve_one(settings, template, None, stopping, s), shared, workers, stopping)


def _serve_one(
    settings: Settings,
    template: Template,
    ready: threading.Event | None,
    stop: threading.Event | None,
    sock: socket.socket | None,
) -> None:
    app = create_app(settings, template)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.api_port,
        log_config=None,  # leave the process's logging alone
        access_log=False,  # the twin writes API Gateway's access log itself
        http="httptools",  # uvicorn's fast HTTP parser (the pure-Python h11 costs more per request)
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    try:
        # uvloop: uvicorn's fast event loop (serve() is called here rather than through uvicorn.run).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(server, ready, stop, sock))
    except SystemExit as error:  # uvicorn exits when it cannot bind
        where = f"{settings.host}:{settings.api_port}" if sock is None else str(sock.getsockname())
        raise RuntimeError(f"the API could not listen on {where}") from error


async def _run(
    server: uvicorn.Server,
    ready: threading.Event | None,
    stop: threading.Event | None,
    sock: socket.socket | None,
) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started and ready is not None:
        ready.set()
    while not task.done():
        if stop is not None and stop.is_set():
            server.should_exit = True
        await asyncio.wait({task}, timeout=0.05)
    task.result()
