"""DynamoDB Streams API records (as boto3 returns them) -> records exactly as Lambda delivers them.

Differences this module removes:

* boto3 parses ``ApproximateCreationDateTime`` into a ``datetime``; Lambda sends epoch seconds (a number).
* boto3 turns binary attribute values (``B``, ``BS``) into ``bytes``; Lambda sends them base64-encoded.
* Lambda adds ``eventSourceARN``; the region is the function's (DynamoDB Local says ``ddblocal``).
* DynamoDB Local's TTL-deletion records list index key attributes in ``Keys``; AWS lists the primary key.
* DynamoDB Local 3.3 reports a TTL deletion with ``eventName`` ``UNKNOWN_TO_SDK_VERSION`` and without
  ``userIdentity``. AWS sends ``REMOVE`` with the DynamoDB service as the user identity, and the function's
  guards (and filters) depend on exactly that.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Final

KNOWN_EVENT_NAMES: Final = frozenset({"INSERT", "MODIFY", "REMOVE"})
TTL_USER_IDENTITY: Final = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
# Order of the keys of ``dynamodb`` in a Lambda event (readers of logs expect AWS's order).
_DYNAMODB_KEYS: Final = (
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "SizeBytes",
    "StreamViewType",
)
# DynamoDB Local rounds ApproximateCreationDateTime down to the minute (AWS: to the second).
_LOCAL_TIME_GRANULARITY_SECONDS: Final = 60.0


def epoch_seconds(value: datetime | float | int | str) -> int:
    """ApproximateCreationDateTime as Lambda sends it: whole epoch seconds."""
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(float(value))


def _json_attribute_value(value: Any) -> Any:
    """One AttributeValue with bytes turned into base64 text, recursively (as Lambda's JSON has it)."""
    if not isinstance(value, Mapping):
        return value
    converted: dict[str, Any] = {}
    for type_key, inner in value.items():
        if type_key == "B" and isinstance(inner, bytes | bytearray):
            converted[type_key] = base64.b64encode(bytes(inner)).decode("ascii")
        elif type_key == "BS" and isinstance(inner, list):
            converted[type_key] = [
                base64.b64encode(bytes(b)).decode("ascii") if isinstance(b, bytes | bytearray) else b
                for b in inner
            ]
        elif type_key == "M" and isinstance(inner, Mapping):
            converted[type_key] = _json_image(inner)
        elif type_key == "L" and isinstance(inner, list):
            converted[type_key] = [_json_attribute_value(v) for v in inner]
        else:
            converted[type_key] = inner
    return converted


def _json_image(image: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _json_attribute_value(value) for name, value in image.items()}


def to_lambda_record(
    record: Mapping[str, Any],
    stream_arn: str,
    region: str | None = None,
    key_names: Collection[str] | None = None,
) -> dict[str, Any]:
    """One Streams API record as it appears in ``event["Records"]`` of a Lambda invocation.

    ``region`` replaces ``awsRegion`` when given (the trigger passes the function's region, since
    DynamoDB Local reports ``ddblocal``). ``key_names`` (the table's key schema) trims ``Keys`` to the
    primary key: DynamoDB Local's TTL-deletion records also list every index key attribute there, and a
    handler passing ``Keys`` to UpdateItem would then be refused.
    """
    source = record.get("dynamodb") or {}
    dynamodb: dict[str, Any] = {}
    for key in _DYNAMODB_KEYS:
        if key not in source:
            continue
        value = source[key]
        if key == "ApproximateCreationDateTime":
            dynamodb[key] = epoch_seconds(value)
        elif key == "Keys" and key_names is not None:
            dynamodb[key] = _json_image({k: v for k, v in value.items() if k in key_names})
        elif key in ("Keys", "NewImage", "OldImage"):
            dynamodb[key] = _json_image(value)
        else:
            dynamodb[key] = value
    # Keep anything a newer API adds, after the known keys.
    for key, value in source.items():
        dynamodb.setdefault(key, value)

    event_name = record.get("eventName")
    user_identity = record.get("userIdentity")
    if event_name not in KNOWN_EVENT_NAMES:
        # DynamoDB Local's TTL deletion (UNKNOWN_TO_SDK_VERSION): the only other record DynamoDB writes
        # is a service deletion, and AWS sends it as REMOVE by the DynamoDB service.
        event_name = "REMOVE"
        user_identity = dict(TTL_USER_IDENTITY)

    converted: dict[str, Any] = {
        "eventID": record.get("eventID"),
        "eventName": event_name,
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": region or record.get("awsRegion"),
        "dynamodb": dynamodb,
    }
    if user_identity:
        converted["userIdentity"] = dict(user_identity)
    converted["eventSourceARN"] = stream_arn
    return converted


def approximate_arrival(record: Mapping[str, Any], first_read_at: float) -> float:
    """Best estimate (epoch seconds) of when a record entered the stream.

    ``ApproximateCreationDateTime`` is that time, rounded down: to the second on AWS, to the minute on
    DynamoDB Local. A minute-aligned value is therefore only a lower bound; the record cannot have
    arrived later than the poller first read it, nor a minute after the rounded value. The earlier of
    those two bounds keeps the iterator age honest on DynamoDB Local (an idle trigger would otherwise
    report up to 59 seconds of lag) while a real backlog still shows its age to within a minute.
    """
    raw = (record.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    if raw is None:
        return first_read_at
    created = raw.timestamp() if isinstance(raw, datetime) else float(raw)
    if created % _LOCAL_TIME_GRANULARITY_SECONDS == 0:
        return min(created + _LOCAL_TIME_GRANULARITY_SECONDS, max(created, first_read_at))
    return created
