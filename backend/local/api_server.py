"""The API twin: API Gateway's REST API for one machine, read from ``infra/template.yaml``.

An ASGI app (starlette, served by uvicorn) that does what API Gateway does with the template's API, in
API Gateway's order: route (403 MISSING_AUTHENTICATION_TOKEN), API key (403 INVALID_API_KEY), payload
limit (413), content type against the request templates and ``passthroughBehavior`` (415), request
validator and model (400), then the request mapping template, a SigV4-signed call of the DynamoDB action
named by the integration uri, the integration response chosen by a regex on DynamoDB's status code, its
mapping template and ``$context.responseOverride``. Errors before the integration answer with the
template's gateway responses. One access-log line per request goes to the ``streamdesk.api.access``
logger in the stage's AccessLogSetting format.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import socket
import string
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import aiohttp
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from backend.local.api_workers import listening_socket, serve_forked, worker_count
from backend.local.apigateway import (
    GATEWAY_ERROR_TYPES,
    JSON,
    MAX_BODY_BYTES,
    ApiDefinition,
    Route,
    body_errors,
    parse_json_strict,
    validation_error_string,
)
from backend.local.sigv4 import PostSigner
from backend.local.vtl import UTIL, RequestParams, VelocityTemplate, VtlError, VtlInput
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Settings
from backend.template import LOCAL_ACCOUNT_ID, Template, TemplateError

ACCESS_LOGGER = logging.getLogger("streamdesk.api.access")
log = logging.getLogger(__name__)

# A body far over the limit is still read (and dropped) up to here so the client sees the 413 rather
# than a reset connection; beyond it the connection is closed.
_DRAIN_LIMIT = 4 * MAX_BODY_BYTES
_HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ID_ALPHABET = string.ascii_letters + string.digits
DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810"
DYNAMODB_CONTENT_TYPE = "application/x-amz-json-1.0"
MAX_DYNAMODB_CONNECTIONS = 64


def new_extended_request_id() -> str:
    """A server-generated id (16 letters and digits, ~95 random bits); no client header can choose it."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def api_key_id(key: str) -> str:
    """``$context.identity.apiKeyId``: a stable, non-secret id of the key (on AWS: the ApiKey's id)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


def clf_time(epoch_ms: int) -> str:
    """``$context.requestTime``: CLF, e.g. ``27/Nov/2026:10:12:00 +0000`` (English months, UTC)."""
    t = time.gmtime(epoch_ms / 1000)
    clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"


def new_context(
    *,
    request_id: str,
    method: str,
    path: str,
    stage: str,
    source_ip: str,
    user_agent: str,
    epoch_ms: int,
) -> dict[str, Any]:
    """``$context`` for one request (a dict, so templates can ``#set`` into ``responseOverride``)."""
    return {
        "requestId": request_id,
        "extendedRequestId": new_extended_request_id(),
        "requestTimeEpoch": epoch_ms,
        "requestTime": clf_time(epoch_ms),
        "httpMethod": method,
        "resourcePath": None,
        "resourceId": None,
        "path": path,
        "stage": stage,
        "protocol": "HTTP/1.1",
        "apiId": "local",
        "accountId": LOCAL_ACCOUNT_ID,
        "domainName": "localhost",
        "identity": {"sourceIp": source_ip, "userAgent": user_agent, "apiKey": None, "apiKeyId": None},
        "error": {"message": "", "messageString": '""', "responseType": "", "validationErrorString": ""},
        "integration": {"status": None, "latency": None, "error": None, "requestId": None},
        "integrationStatus": None,
        "integrationLatency": None,
        "requestOverride": {"header": {}, "querystring": {}, "path": {}},
        "responseOverride": {"status": None, "header": {}},
        "status": None,
        "responseLength": None,
        "responseLatency": None,
    }


def _dashes(value: Any) -> Any:
    """Access logs print ``-`` where a value is absent, as API Gateway does."""
    if isinstance(value, Mapping):
        return {k: _dashes(v) for k, v in value.items()}
    return "-" if value is None or value == "" else value


class GatewayReply(Exception):
    """Stop processing and answer with a gateway response."""

    def __init__(self, response_type: str, message: str | None = None, validation: str = "") -> None:
        super().__init__(response_type)
        self.response_type = response_type
        self.message = message
        self.validation = validation


class ApiGatewayTwin:
    """The request pipeline of one API (parsed and compiled once; one shared HTTP client to DynamoDB)."""

    def __init__(self, settings: Settings, template: Template) -> None:
        self.settings = settings
        self.api = ApiDefinition.from_template(template)
        for route in self.api.routes:
            if route.integration.service != "dynamodb":
                raise TemplateError(
                    f"{route.method} {route.resource_path}: the local API twin integrates only with DynamoDB"
                )
        self.dynamodb_url = settings.dynamodb_url.rstrip("/") + "/"
        self._signer = PostSigner(
            self.dynamodb_url,
            settings.aws_access_key_id or LOCAL_ACCESS_KEY,
            settings.aws_secret_access_key or LOCAL_SECRET_KEY,
            settings.region,
            "dynamodb",
        )
        self._api_key = settings.api_key.encode("utf-8")
        self._api_key_id = api_key_id(settings.api_key)
        self._client: aiohttp.ClientSession | None = None

    # -------------------------------------------------------------------------------- lifecycle
    def _http(self) -> aiohttp.ClientSession:
        # aiohttp's connection pool costs the same per request however many clients are waiting (httpx's
        # pool bookkeeping grew with them, and made the twin the narrowest point of the local stack).
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_DYNAMODB_CONNECTIONS, ttl_dns_cache=None),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # ---------------------------------------------------------------------------------- requests
    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        method = request.method.upper()
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        context = new_context(
            # As on AWS, a client's x-amzn-RequestId header becomes $context.requestId.
            request_id=request.headers.get("x-amzn-requestid") or str(uuid.uuid4()),
            method=method,
            path=path if path.startswith(f"/{self.api.stage}/") else f"/{self.api.stage}{path}",
            stage=self.api.stage,
            source_ip=request.client.host if request.client else "127.0.0.1",
            user_agent=request.headers.get("user-agent", ""),
            epoch_ms=int(time.time() * 1000),
        )
        try:
            response = await self._process(request, method, path, context)
        except GatewayReply as reply:
            response = self._gateway_response(context, reply)
        except Exception:
            log.exception("the API twin failed on %s %s", method, path)
            response = self._gateway_response(context, GatewayReply("API_CONFIGURATION_ERROR"))
        context["responseLatency"] = int((time.perf_counter() - started) * 1000)
        context["responseLength"] = len(response.body)
        response.headers["x-amzn-RequestId"] = context["requestId"]
        response.headers["x-amz-apigw-id"] = context["extendedRequestId"]
        self._access_log(context)
        return response

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        # The stage is part of the URL on AWS (/v1/requests); locally both /v1/requests and /requests work.
        candidates = [path]
        prefix = f"/{self.api.stage}"
        if path == prefix or path.startswith(prefix + "/"):
            candidates.insert(0, path[len(prefix) :] or "/")
        for candidate in candidates:
            found = self.api.find_route(method, candidate)
            if found is not None:
                route, params = found
                return route, {name: unquote(value) for name, value in params.items()}
        raise GatewayReply("MISSING_AUTHENTICATION_TOKEN")

    async def _process(self, request: Request, method: str, path: str, context: dict[str, Any]) -> Response:
        route, path_params = self._route(method, path)
        context["resourcePath"] = route.resource_path
        context["resourceId"] = route.resource_path

        if route.api_key_required:
            sent = request.headers.get(self.api.api_key_header)
            if sent is None or not hmac.compare_digest(sent.encode("utf-8"), self._api_key):
                raise GatewayReply("INVALID_API_KEY")
            context["identity"]["apiKey"] = sent
            context["identity"]["apiKeyId"] = self._api_key_id

        raw = await _read_body(request)
        if raw is None:
            raise GatewayReply("REQUEST_TOO_LARGE")
        content_type = _media_type(request.headers.get("content-type"))
        integration = route.integration
        if integration.rejects(content_type):
            raise GatewayReply("UNSUPPORTED_MEDIA_TYPE")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Stored "exactly as received" is impossible for bytes that are not text: refuse, never alter.
            raise GatewayReply("BAD_REQUEST_BODY", None, "[The body is not valid UTF-8 text]") from None

        params = RequestParams(
            path=path_params, querystring=dict(request.query_params), header=dict(request.headers)
        )
        if route.validator is not None:
            self._validate(route, params, content_type, body)

        template = integration.request_template_for(content_type)
        payload = self._render(template, context, VtlInput(body, params)) if template else body

        status, response_body = await self._call_dynamodb(route, payload, context)
        selected = integration.select_response(status)
        if selected is None:
            log.error("%s %s: no integration response for status %s", method, path, status)
            raise GatewayReply("API_CONFIGURATION_ERROR")
        response_template = selected.template_for(_media_type(request.headers.get("accept"), default=""))
        if response_template is None:
            output = response_body  # no mapping: the integration's body passes through
        else:
            output = self._render(response_template, context, VtlInput(response_body, params))
        override = context["responseOverride"]
        status_code = int(override.get("status") or selected.status_code)
        context["status"] = status_code
        headers = {"content-type": JSON}
        for name, value in selected.parameters.items():
            header = name.removeprefix("method.response.header.")
            if len(value) >= 2 and value[0] == value[-1] == "'":
                headers[header] = value[1:-1]
        headers.update({str(k): str(v) for k, v in (override.get("header") or {}).items()})
        return Response(output, status_code=status_code, headers=headers)

    def _validate(self, route: Route, params: RequestParams, content_type: str, body: str) -> None:
        validator = route.validator
        assert validator is not None
        if validator.validate_parameters:
            missing = [
                p.name
                for p in route.parameters
                if p.required
                and p.location in ("query", "header")
                and (p.location != "query" or p.name not in params.querystring)
                and (p.location != "header" or params.find(p.name) is None)
            ]
            if missing:
                raise GatewayReply(
                    "BAD_REQUEST_PARAMETERS", f"Missing required request parameters: [{', '.join(missing)}]"
                )
        model = route.models.get(content_type)
        if validator.validate_body and model is not None:
            errors = body_errors(model, body)
            if errors:
                raise GatewayReply("BAD_REQUEST_BODY", None, validation_error_string(errors))

    def _render(self, template: VelocityTemplate, context: dict[str, Any], payload: VtlInput) -> str:
        try:
            return template.render({"context": context, "input": payload, "util": UTIL, "stageVariables": {}})
        except VtlError:
            # AWS logs "Execution failed due to configuration error" and answers 500.
            log.exception("mapping template failed")
            raise GatewayReply("API_CONFIGURATION_ERROR") from None

    async def _call_dynamodb(self, route: Route, payload: str, context: dict[str, Any]) -> tuple[int, str]:
        """POST the rendered request to DynamoDB's JSON API; (status, body) as API Gateway sees them."""
        integration = route.integration
        started = time.perf_counter()
        try:
            status, text = await self._post(integration.action, payload, integration.timeout_ms / 1000)
        except aiohttp.ClientConnectorError as error:
            # Unreachable: nothing was stored. Answer through the template's 5xx mapping.
            context["integration"]["error"] = f"DynamoDB unreachable at {self.dynamodb_url}: {error}"
            status = 503
            text = json.dumps(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailableException",
                    "message": f"DynamoDB is unreachable at {self.dynamodb_url}",
                }
            )
        except TimeoutError as error:
            context["integration"]["error"] = f"DynamoDB did not answer in time: {error!r}"
            raise GatewayReply("INTEGRATION_TIMEOUT") from None
        except aiohttp.ClientError as error:
            context["integration"]["error"] = f"DynamoDB call failed: {error!r}"
            raise GatewayReply("INTEGRATION_FAILURE") from None
        latency = int((time.perf_counter() - started) * 1000)
        context["integration"].update(status=status, latency=latency)
        context["integrationStatus"] = status
        context["integrationLatency"] = latency
        return status, text

    async def _post(self, action: str, payload: str, timeout: float) -> tuple[int, str]:
        status, text = await self._send(action, payload, timeout)
        if status == 500:
            try:
                parse_json_strict(payload)
            except (ValueError, RecursionError) as error:
                # DynamoDB refuses a body it cannot parse with 400 SerializationException (the apostrophe
                # trap); DynamoDB Local answers 500 InternalFailure instead, so the twin answers as AWS
                # does. Checked only then: parsing every payload twice would tax the hot path.
                return 400, json.dumps(
                    {
                        "__type": "com.amazon.coral.service#SerializationException",
                        "Message": f"Could not parse request body into json: {error}",
                    }
                )
        return status, text

    async def _send(self, action: str, payload: str, timeout: float) -> tuple[int, str]:
        data = payload.encode("utf-8")
        headers = self._signer.headers(f"{DYNAMODB_TARGET_PREFIX}.{action}", DYNAMODB_CONTENT_TYPE, data)
        async with self._http().post(
            self.dynamodb_url,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0)),
        ) as response:
            return response.status, (await response.read()).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------------- gateway responses
    def _gateway_response(self, context: dict[str, Any], reply: GatewayReply) -> Response:
        gateway = self.api.gateway_response(reply.response_type)
        message = reply.message or gateway.default_message
        context["error"].update(
            message=message,
            messageString=json.dumps(message),
            responseType=reply.response_type,
            validationErrorString=reply.validation,
        )
        context["status"] = gateway.status_code
        template = gateway.template_for()
        body = json.dumps({"message": message})
        if template is not None:
            try:
                body = template.render({"context": context, "input": VtlInput(""), "util": UTIL})
            except VtlError:
                log.exception("gateway response %s failed to render", reply.response_type)
        headers = {"content-type": JSON, **gateway.headers}
        if reply.response_type in GATEWAY_ERROR_TYPES:
            headers["x-amzn-ErrorType"] = GATEWAY_ERROR_TYPES[reply.response_type]
        return Response(body, status_code=gateway.status_code, headers=headers)

    def _access_log(self, context: dict[str, Any]) -> None:
        if self.api.access_log_format is None or not ACCESS_LOGGER.isEnabledFor(logging.INFO):
            return
        try:
            line = self.api.access_log_format.render({"context": _dashes(context)})
        except VtlError:
            log.exception("access log format failed to render")
            return
        ACCESS_LOGGER.info("%s", line)


def _media_type(header: str | None, default: str = JSON) -> str:
    """The media type without parameters, lower case (no Content-Type means JSON, as on AWS)."""
    if not header:
        return default
    media = header.split(";", 1)[0].strip().lower()
    return media or default


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it exceeds API Gateway's 10 MB (read and dropped, so the client gets a 413)."""
    declared = request.headers.get("content-length", "")
    too_large = declared.isdigit() and int(declared) > MAX_BODY_BYTES
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            too_large = True
            chunks.clear()
        if not too_large:
            chunks.append(chunk)
        if size > _DRAIN_LIMIT:
            break
    return None if too_large else b"".join(chunks)


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
