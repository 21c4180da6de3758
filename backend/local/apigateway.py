"""The REST API as the template defines it, read into typed routes for the local API twin.

Everything comes from the ``RequestsApi`` resource: its OpenAPI ``DefinitionBody`` (paths, methods, the
``api_key`` security requirement, request validators and models, ``x-amazon-apigateway-integration`` and
``x-amazon-apigateway-gateway-responses``) and the stage (name, access-log format). VTL templates are
compiled here, once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft4Validator

from backend.local.vtl import VelocityTemplate
from backend.template import API_ID, Template, TemplateError

JSON = "application/json"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
DEFAULT_API_KEY_HEADER = "x-api-key"

# API Gateway's own gateway responses: status and message when the template does not customise one.
# Unlisted types inherit DEFAULT_4XX/DEFAULT_5XX. Messages are AWS's defaults.
GATEWAY_RESPONSE_DEFAULTS: Mapping[str, tuple[int, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "INVALID_API_KEY": (403, "Forbidden"),
    "ACCESS_DENIED": (403, "Forbidden"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported Media Type"),
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
    "BAD_REQUEST_PARAMETERS": (400, "Invalid request parameters"),
    "THROTTLED": (429, "Too Many Requests"),
    "INTEGRATION_FAILURE": (504, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "API_CONFIGURATION_ERROR": (500, "Internal server error"),
    "DEFAULT_4XX": (400, "Bad Request"),
    "DEFAULT_5XX": (500, "Internal server error"),
}

# The x-amzn-ErrorType header API Gateway sends with its own errors.
GATEWAY_ERROR_TYPES: Mapping[str, str] = {
    "MISSING_AUTHENTICATION_TOKEN": "IncompleteSignatureException",
    "INVALID_API_KEY": "ForbiddenException",
    "ACCESS_DENIED": "AccessDeniedException",
    "REQUEST_TOO_LARGE": "RequestTooLargeException",
    "UNSUPPORTED_MEDIA_TYPE": "UnsupportedMediaTypeException",
    "BAD_REQUEST_BODY": "BadRequestException",
    "BAD_REQUEST_PARAMETERS": "BadRequestException",
    "THROTTLED": "TooManyRequestsException",
    "INTEGRATION_TIMEOUT": "InternalServerErrorException",
    "INTEGRATION_FAILURE": "InternalServerErrorException",
    "API_CONFIGURATION_ERROR": "InternalServerErrorException",
}

_DEFAULT_GATEWAY_TEMPLATE = '{"message":$context.error.messageString}'


class GatewayReply(Exception):
    """Stop processing a request and answer with the gateway response of ``response_type``."""

    def __init__(self, response_type: str, message: str | None = None, validation: str = "") -> None:
        super().__init__(response_type)
        self.response_type = response_type
        self.message = message
        self.validation = validation


@dataclass(frozen=True)
class RequestValidator:
    name: str
    validate_body: bool
    validate_parameters: bool


@dataclass(frozen=True)
class Parameter:
    """A declared method request parameter (``in``: path, query or header)."""

    name: str
    location: str
    required: bool


@dataclass(frozen=True)
class IntegrationResponse:
    """One entry of the integration's ``responses``: selected by a regex on the integration status."""

    selection_pattern: str | None  # None: the default response
    status_code: int
    templates: Mapping[str, VelocityTemplate]
    parameters: Mapping[str, str] = field(default_factory=dict)

    def matches(self, status: int) -> bool:
        # API Gateway matches the whole status code (Java's String.matches).
        return (
            self.selection_pattern is not None
            and re.fullmatch(self.selection_pattern, str(status)) is not None
        )

    def template_for(self, accept: str | None = None) -> VelocityTemplate | None:
        if accept and accept in self.templates:
            return self.templates[accept]
        if JSON in self.templates:
            return self.templates[JSON]
        return next(iter(self.templates.values()), None)


@dataclass(frozen=True)
class Integration:
    """An ``x-amazon-apigateway-integration`` of type ``aws`` (an AWS service action)."""

    type: str
    http_method: str
    uri: str
    service: str
    action: str
    passthrough_behavior: str  # when_no_match | when_no_templates | never
    request_templates: Mapping[str, VelocityTemplate]
    responses: tuple[IntegrationResponse, ...]
    timeout_ms: int = 29_000

    def select_response(self, status: int) -> IntegrationResponse | None:
        """The response whose pattern matches ``status``, else the default one (None if neither)."""
        for response in self.responses:
            if response.matches(status):
                return response
        return next((r for r in self.responses if r.selection_pattern is None), None)

    def request_template_for(self, content_type: str) -> VelocityTemplate | None:
        return self.request_templates.get(content_type)

    def rejects(self, content_type: str) -> bool:
        """True when a request of this content type is refused with 415 (no template, no passthrough)."""
        if content_type in self.request_templates:
            return False
        if self.passthrough_behavior == "never":
            return True
        if self.passthrough_behavior == "when_no_templates":
            return bool(self.request_templates)
        return False


@dataclass(frozen=True)
class Route:
    """One method on one resource path."""

    method: str
    resource_path: str  # as declared: /requests/{id}
    pattern: re.Pattern[str]
    api_key_required: bool
    validator: RequestValidator | None
    models: Mapping[str, Draft4Validator]  # content type -> body model
    parameters: tuple[Parameter, ...]
    integration: Integration

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()


@dataclass(frozen=True)
class GatewayResponse:
    response_type: str
    status_code: int
    templates: Mapping[str, VelocityTemplate]
    headers: Mapping[str, str]
    default_message: str

    def template_for(self) -> VelocityTemplate | None:
        return self.templates.get(JSON) or next(iter(self.templates.values()), None)


@dataclass(frozen=True)
class ApiDefinition:
    """The whole API: routes, gateway responses, stage and access-log format."""

    title: str
    stage: str
    routes: tuple[Route, ...]
    gateway_responses: Mapping[str, GatewayResponse]
    access_log_format: VelocityTemplate | None
    api_key_header: str = DEFAULT_API_KEY_HEADER

    @classmethod
    def from_template(cls, template: Template, api_id: str = API_ID) -> ApiDefinition:
        return parse_api(template, api_id)

    def find_route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for a method and path (stage prefix already removed), with its path parameters."""
        for route in self.routes:
            if route.method != method.upper() and route.method != "ANY":
                continue
            params = route.match(path)
            if params is not None:
                return route, params
        return None

    def gateway_response(self, response_type: str) -> GatewayResponse:
        """A gateway response: the template's, else the DEFAULT_4XX/5XX it inherits, else AWS's built-in."""
        if response_type in self.gateway_responses:
            return self.gateway_responses[response_type]
        status, message = GATEWAY_RESPONSE_DEFAULTS.get(response_type, (500, "Internal server error"))
        family = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        inherited = self.gateway_responses.get(family)
        if inherited is not None:
            return GatewayResponse(response_type, status, inherited.templates, inherited.headers, message)
        template = VelocityTemplate(_DEFAULT_GATEWAY_TEMPLATE, f"gateway response {response_type}")
        return GatewayResponse(response_type, status, {JSON: template}, {}, message)


# ----------------------------------------------------------------------------------------- parsing
_PATH_PARAMETER = re.compile(r"\{([A-Za-z0-9_.-]+)(\+?)\}")
_URI = re.compile(r"^arn:[^:]+:apigateway:[^:]*:(?P<service>[^:]+):(?P<kind>action|path)/(?P<action>.+)$")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method")


def path_pattern(resource_path: str) -> re.Pattern[str]:
    """A regex for a resource path: ``{name}`` is one segment, ``{name+}`` the rest of the path."""
    pattern = ""
    position = 0
    for found in _PATH_PARAMETER.finditer(resource_path):
        pattern += re.escape(resource_path[position : found.start()])
        name = found.group(1).replace(".", "_").replace("-", "_")
        pattern += f"(?P<{name}>.+)" if found.group(2) else f"(?P<{name}>[^/]+)"
        position = found.end()
    pattern += re.escape(resource_path[position:])
    return re.compile(pattern)


def _json_schema_validator(schema: Mapping[str, Any], document: Mapping[str, Any]) -> Draft4Validator:
    """A draft-4 validator whose ``$ref``s resolve against the OpenAPI document's components."""
    root = {"$ref": schema["$ref"]} if "$ref" in schema else dict(schema)
    root["components"] = document.get("components", {})
    root["definitions"] = document.get("definitions", {})  # Swagger 2 documents keep models here
    Draft4Validator.check_schema(root)
    return Draft4Validator(root)


def _templates(spec: Mapping[str, Any] | None, label: str) -> dict[str, VelocityTemplate]:
    return {
        str(ct).lower(): VelocityTemplate(str(src), f"{label} [{ct}]") for ct, src in (spec or {}).items()
    }


def _integration(spec: Mapping[str, Any], label: str) -> Integration:
    kind = str(spec.get("type", "")).lower()
    if kind != "aws":
        raise TemplateError(f"{label}: integration type {kind!r} is not supported locally (only 'aws')")
    uri = str(spec.get("uri", ""))
    found = _URI.match(uri)
    if found is None or found.group("kind") != "action":
        raise TemplateError(f"{label}: integration uri {uri!r} is not an 'action/...' AWS service uri")
    responses = []
    for pattern, response in (spec.get("responses") or {}).items():
        responses.append(
            IntegrationResponse(
                selection_pattern=None if pattern == "default" else str(pattern),
                status_code=int(response.get("statusCode", 200)),
                templates=_templates(response.get("responseTemplates"), f"{label} response {pattern}"),
                parameters={str(k): str(v) for k, v in (response.get("responseParameters") or {}).items()},
            )
        )
    return Integration(
        type=kind,
        http_method=str(spec.get("httpMethod", "POST")).upper(),
        uri=uri,
        service=found.group("service"),
        action=found.group("action"),
        passthrough_behavior=str(spec.get("passthroughBehavior", "when_no_match")).lower(),
        request_templates=_templates(spec.get("requestTemplates"), f"{label} request"),
        responses=tuple(responses),
        timeout_ms=int(spec.get("timeoutInMillis", 29_000)),
    )


def _route(
    document: Mapping[str, Any],
    resource_path: str,
    method: str,
    operation: Mapping[str, Any],
    inherited_parameters: list[Any],
) -> Route:
    label = f"{method.upper()} {resource_path}"
    schemes = (document.get("components") or {}).get("securitySchemes") or document.get(
        "securityDefinitions", {}
    )
    security = operation.get("security", document.get("security")) or []
    api_key_required = any(
        (schemes.get(name) or {}).get("type") == "apiKey" for requirement in security for name in requirement
    )

    validators = document.get("x-amazon-apigateway-request-validators") or {}
    validator_name = operation.get(
        "x-amazon-apigateway-request-validator", document.get("x-amazon-apigateway-request-validator")
    )
    validator = None
    if validator_name:
        spec = validators.get(validator_name)
        if spec is None:
            raise TemplateError(f"{label}: no request validator {validator_name!r}")
        validator = RequestValidator(
            str(validator_name),
            bool(spec.get("validateRequestBody")),
            bool(spec.get("validateRequestParameters")),
        )

    models: dict[str, Draft4Validator] = {}
    for content_type, media in ((operation.get("requestBody") or {}).get("content") or {}).items():
        if "schema" in (media or {}):
            models[str(content_type).lower()] = _json_schema_validator(media["schema"], document)

    parameters = tuple(
        Parameter(str(p["name"]), str(p.get("in", "query")), bool(p.get("required", False)))
        for p in [*inherited_parameters, *(operation.get("parameters") or [])]
        if isinstance(p, Mapping) and "name" in p
    )

    integration_spec = operation.get("x-amazon-apigateway-integration")
    if integration_spec is None:
        raise TemplateError(f"{label}: no x-amazon-apigateway-integration")
    http_method = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
    return Route(
        method=http_method,
        resource_path=resource_path,
        pattern=path_pattern(resource_path),
        api_key_required=api_key_required,
        validator=validator,
        models=models,
        parameters=parameters,
        integration=_integration(integration_spec, label),
    )


def _gateway_responses(document: Mapping[str, Any]) -> dict[str, GatewayResponse]:
    responses: dict[str, GatewayResponse] = {}
    for response_type, spec in (document.get("x-amazon-apigateway-gateway-responses") or {}).items():
        default_status, message = GATEWAY_RESPONSE_DEFAULTS.get(response_type, (500, "Internal server error"))
        headers = {}
        for key, value in (spec.get("responseParameters") or {}).items():
            prefix = "gatewayresponse.header."
            text = str(value)
            if key.startswith(prefix) and len(text) >= 2 and text[0] == text[-1] == "'":
                headers[key[len(prefix) :]] = text[1:-1]  # static values only
        responses[response_type] = GatewayResponse(
            response_type=response_type,
            status_code=int(spec.get("statusCode", default_status)),
            templates=_templates(spec.get("responseTemplates"), f"gateway response {response_type}")
            or {JSON: VelocityTemplate(_DEFAULT_GATEWAY_TEMPLATE, f"gateway response {response_type}")},
            headers=headers,
            default_message=message,
        )
    return responses


def parse_api(template: Template, api_id: str = API_ID) -> ApiDefinition:
    """Read an ``AWS::Serverless::Api`` (or ``AWS::ApiGateway::RestApi`` with a Body) from the template."""
    properties = template.properties(api_id)
    document = properties.get("DefinitionBody") or properties.get("Body")
    if not isinstance(document, Mapping):
        raise TemplateError(f"{api_id} has no DefinitionBody")
    routes = []
    for resource_path, item in (document.get("paths") or {}).items():
        inherited = list(item.get("parameters") or [])
        for method, operation in item.items():
            if method.lower() in _METHODS:
                routes.append(_route(document, str(resource_path), method.lower(), operation, inherited))
    # Literal segments win over parameters, as API Gateway's routing prefers the more specific resource.
    routes.sort(key=lambda r: (r.resource_path.count("{"), -len(r.resource_path)))
    access_log = properties.get("AccessLogSetting") or {}
    log_format = access_log.get("Format")
    info = document.get("info") or {}
    return ApiDefinition(
        title=str(info.get("title", api_id)),
        stage=str(properties.get("StageName", "v1")),
        routes=tuple(routes),
        gateway_responses=_gateway_responses(document),
        access_log_format=VelocityTemplate(str(log_format), "access log format") if log_format else None,
    )


def validation_error_string(errors: list[str]) -> str:
    """``$context.error.validationErrorString``: the validator's messages, JSON-escaped as AWS sends them."""
    return json.dumps("[" + ", ".join(errors) + "]")[1:-1]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; API Gateway's parser (and DynamoDB's) do not.
    raise ValueError(f"invalid JSON token {name}")


def parse_json_strict(text: str) -> Any:
    """JSON as API Gateway's and DynamoDB's parsers accept it (no NaN/Infinity, no control characters)."""
    return json.loads(text, parse_constant=_reject_constant)


def body_errors(model: Draft4Validator, body: str) -> list[str]:
    """Why a body fails its model, in the words of API Gateway's validator (empty list: valid)."""
    try:
        document = parse_json_strict(body)
    except ValueError as error:
        return [f"Invalid JSON in request body: {error}"]
    except RecursionError:
        return ["Invalid JSON in request body: nested too deeply"]
    messages = []
    for problem in sorted(model.iter_errors(document), key=lambda e: list(e.absolute_path)):
        if problem.validator == "type":
            expected = problem.validator_value
            allowed = expected if isinstance(expected, list) else [expected]
            messages.append(
                f"instance type ({_json_type(problem.instance)}) does not match any allowed primitive type "
                f"(allowed: {json.dumps(allowed)})"
            )
        else:
            messages.append(problem.message)
    return messages
