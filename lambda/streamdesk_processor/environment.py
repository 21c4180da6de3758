"""Reading a function's settings from its environment: the parsing the processor's and the rollups
consumer's configs share (each passes its own error type, so each keeps its own error model)."""

from __future__ import annotations

from collections.abc import Mapping

# boto3 reads these by itself; they are listed so that a change of endpoint rebuilds the client.
ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def table_name(environ: Mapping[str, str], name: str, error: type[Exception]) -> str:
    """The table the function works on (``name`` must be set: without it the function can do nothing)."""
    table = environ.get(name, "").strip()
    if not table:
        raise error(f"{name} is not set: the function does not know its table")
    return table


def whole_number(environ: Mapping[str, str], name: str, default: int, error: type[Exception]) -> int:
    """``name`` as an int, ``default`` when unset or blank."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise error(f"{name} must be a whole number, got {raw!r}") from None
