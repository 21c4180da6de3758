"""The API twin's request pipeline (routing onwards), in API Gateway's order, with its status codes.

Route (403 MISSING_AUTHENTICATION_TOKEN), API key (403 INVALID_API_KEY), payload limit (413), content type
against the request templates and ``passthroughBehavior`` (415), request validator and model (400), then
the request mapping template, the integration call (``api_integration``), the integration response chosen
by a regex on DynamoDB's status code, its mapping template and ``$context.responseOverride``. Errors before
the integration answer with the template's gateway responses. One access-log line per request goes to the
``streamdesk.api.access`` logger in the stage's AccessLogSetting format.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from backend.local.api_context import api_key_id, dashes, new_context
from backend.local.api_integration import DynamoDbIntegration
from backend.local.apigateway import (
    GATEWAY_ERROR_TYPES,
    JSON,
    MAX_BODY_BYTES,
    ApiDefinition,
    GatewayReply,
    Route,
    body_errors,
    validation_error_string,
)
from backend.local.vtl import VelocityTemplate, VtlError
from backend.local.vtl_objects import UTIL, RequestParams, VtlInput
from backend.settings import Settings
from backend.template import Template, TemplateError

ACCESS_LOGGER = logging.getLogger("streamdesk.api.access")
log = logging.getLogger(__name__)

# A body far over the limit is still read (and dropped) up to here so the client sees the 413 rather
# than a reset connection; beyond it the connection is closed.
_DRAIN_LIMIT = 4 * MAX_BODY_BYTES


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
        self.integration = DynamoDbIntegration(settings)
        self._api_key = settings.api_key.encode("utf-8")
        self._api_key_id = api_key_id(settings.api_key)

    async def close(self) -> None:
        await self.integration.close()

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

        status, response_body = await self.integration.call(route, payload, context)
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
            line = self.api.access_log_format.render({"context": dashes(context)})
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
