"""The data layer's one error model: every DynamoDB call, read or write, goes through :class:`TableCalls`,
which turns an outage, a missing table or refused credentials into :class:`StoreUnavailable` (one message
for a person), and the one place the dashboard's DynamoDB client is configured."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from backend.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Short timeouts and one retry: an outage must reach the user as a message within seconds, not minutes.
CONNECT_TIMEOUT_S: Final = 2.0
READ_TIMEOUT_S: Final = 10.0
MAX_ATTEMPTS: Final = 2

_CREDENTIAL_ERRORS: Final = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationTokenException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "AccessDeniedException",
    }
)
_UNAVAILABLE_ERRORS: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_CONNECTION_ERRORS: Final = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)

T = TypeVar("T")


class StoreUnavailable(Exception):
    """DynamoDB cannot be used: unreachable, table missing, credentials refused. ``str()`` is for humans.

    Reads and writes raise it alike, so a bulk action against an outage stops at once with one message."""


def dynamodb_client(settings: Settings) -> DynamoDBClient:
    """The dashboard's DynamoDB client (thread-safe): short timeouts, one retry."""
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    )
    try:
        return boto3.client("dynamodb", config=config, **settings.boto3_kwargs())
    except (NoRegionError, BotoCoreError) as error:
        raise StoreUnavailable(f"cannot set up a DynamoDB client: {error}") from error


class TableCalls:
    """Runs DynamoDB calls on one table; what a person must hear about becomes :class:`StoreUnavailable`.

    Any other ``ClientError`` (a failed condition, a validation error of one item) is raised unchanged for
    the caller to judge."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self.client = client
        self.table = table

    @property
    def endpoint(self) -> str:
        return str(getattr(self.client.meta, "endpoint_url", "") or "DynamoDB")

    def __call__(self, operation: Callable[..., T], **params: Any) -> T:
        try:
            return operation(**params)
        except _CONNECTION_ERRORS as error:
            raise StoreUnavailable(f"DynamoDB at {self.endpoint} is unreachable ({error})") from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise StoreUnavailable(
                "no usable AWS credentials: set STREAMDESK_AWS_ACCESS_KEY_ID and "
                "STREAMDESK_AWS_SECRET_ACCESS_KEY, or configure an AWS profile"
            ) from error
        except ClientError as error:
            translated = self._translated(error)
            if translated is None:
                raise
            raise translated from error
        except ParamValidationError:
            raise  # a bug in the caller, not an outage
        except BotoCoreError as error:
            raise StoreUnavailable(f"DynamoDB at {self.endpoint} cannot be used: {error}") from error

    def _translated(self, error: ClientError) -> StoreUnavailable | None:
        """The StoreUnavailable a person should read for ``error``, or None (the caller's to judge)."""
        code = str(error.response.get("Error", {}).get("Code", ""))
        message = str(error.response.get("Error", {}).get("Message", "")) or code
        if code == "ResourceNotFoundException":
            return StoreUnavailable(
                f"table {self.table} does not exist at {self.endpoint} (start the stack: make up)"
            )
        if code in _CREDENTIAL_ERRORS:
            return StoreUnavailable(f"DynamoDB refused the credentials: {message}")
        if code == "ValidationException" and "index" in message.lower():
            # A table made before the indexes existed: `make up` adds them (backend.local.table).
            return StoreUnavailable(
                f"table {self.table} lacks the dashboard's indexes ({message}); restart the stack "
                "(make up) or redeploy to add them"
            )
        if code in _UNAVAILABLE_ERRORS:
            return StoreUnavailable(f"DynamoDB is overloaded or failing, try again: {message}")
        return None


class GuardedClient:
    """A DynamoDB client whose every call goes through :class:`TableCalls` (for readers that take a plain
    client, such as ``backend.rollups``): an outage or a missing table is :class:`StoreUnavailable`, naming
    the table the call was for."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.meta = client.meta

    def __getattr__(self, name: str) -> Callable[..., Any]:
        operation = getattr(self._client, name)

        def call(**params: Any) -> Any:
            return TableCalls(self._client, _table_of(params))(operation, **params)

        return call


def _table_of(params: dict[str, Any]) -> str:
    """The table a call's parameters name (``TableName``, or the first of ``RequestItems``)."""
    if "TableName" in params:
        return str(params["TableName"])
    return ", ".join(params.get("RequestItems") or {}) or "(unknown table)"


_BINARY_VALUE: Final = b'"B'  # the start of a "B" or "BS" type key: never in a rollup item


def _raw_query_answer(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """A successful Query's JSON as it came, instead of botocore's parse of it (see
    :func:`rollups_client`)."""
    if int(response_dict.get("status_code", 500)) >= 300 or not response_dict.get("body"):
        return  # errors go through botocore's parser (their codes and messages)
    if _BINARY_VALUE in response_dict["body"]:
        return  # binary values (B, BS) are base64 in the JSON and bytes after botocore's parse
    customized_response_dict.update(json.loads(response_dict["body"]))
    response_dict["body"] = b"{}"  # nothing left for the parser; the CRC check reads the HTTP body


def rollups_client(settings: Settings) -> DynamoDBClient:
    """A DynamoDB client for the rollups table whose Query answers skip botocore's response parsing.

    Why: botocore walks the output shape for every attribute value, about 2 ms for a busy hour's rollup
    item (a thousand sketch bins and group counters), which made a week's overview spend seconds parsing.
    A rollup item holds only N and S values (and the answer's counts and keys), whose DynamoDB JSON is
    exactly what botocore would return, so the decoded JSON is the answer. Only for this client's Query.
    """
    client = dynamodb_client(settings)
    client.meta.events.register("before-parse.dynamodb.Query", _raw_query_answer)
    return client
