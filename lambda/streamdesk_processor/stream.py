"""Reading DynamoDB stream records: which ones the processor acts on, and what it needs from them.

The trigger's filter (infra/template.yaml) already drops everything but new requests and redrives; these
guards repeat it in code because a filter can be edited, dropped, or (locally) emulated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamdesk_processor import item
from streamdesk_processor.item import Status

INSERT = "INSERT"
MODIFY = "MODIFY"
REMOVE = "REMOVE"


@dataclass(frozen=True)
class Work:
    """A record to act on: the request's id, the claim token, and the index shard to keep."""

    request_id: str
    token: str
    shard: str


@dataclass(frozen=True)
class Ignored:
    """A record to leave alone, and why (logged)."""

    reason: str


def classify(record: Mapping[str, Any]) -> Work | Ignored:
    """Decide what to do with one Lambda-shaped stream record (the raw dict, as Lambda delivers it).

    Raises ValueError for a record that cannot come from a DynamoDB stream (no eventID, no key): such a
    record is reported as a failure rather than silently dropped.
    """
    # The raw name, not Powertools' enum: an unknown name (DynamoDB Local's TTL deletions arrive as
    # UNKNOWN_TO_SDK_VERSION) must be ignored, not crash the record.
    event_name = record.get("eventName")
    if event_name == REMOVE:
        principal = (record.get("userIdentity") or {}).get("principalId")
        return Ignored("TTL deletion" if principal == "dynamodb.amazonaws.com" else "item deleted")
    if event_name not in (INSERT, MODIFY):
        return Ignored(f"event {event_name!r}")
    stream = record.get("dynamodb") or {}
    new_image = stream.get("NewImage") or {}
    new_status = _string(new_image, item.STATUS)
    if new_status != Status.PENDING:
        return Ignored(f"status {new_status!r} is not {Status.PENDING.value}")
    if event_name == MODIFY:
        old_status = _string(stream.get("OldImage") or {}, item.STATUS)
        if old_status != Status.FAILED:
            # Only a redrive (FAILED -> PENDING) is new work; PROCESSING -> PENDING is the processor
            # handing a transient failure back, and the trigger re-sends the original record for that.
            return Ignored(f"modification from {old_status!r} is not a redrive")
    token = record.get("eventID")
    if not token:
        raise ValueError("stream record without an eventID")
    request_id = _string(stream.get("Keys") or {}, item.ID) or _string(new_image, item.ID)
    if not request_id:
        raise ValueError(f"stream record {token} carries no '{item.ID}' key")
    return Work(request_id=request_id, token=str(token), shard=shard_of(new_image))


def shard_of(image: Mapping[str, Any]) -> str:
    """The write shard of the item's index attributes: the suffix of ``timeBucket`` (see the contract)."""
    return item.shard_of(_string(image, item.TIME_BUCKET))


def sequence_number(record: Mapping[str, Any]) -> str | None:
    return (record.get("dynamodb") or {}).get("SequenceNumber")


def _string(image: Mapping[str, Any], name: str) -> str | None:
    """The value of a string attribute in a DynamoDB-JSON image (``{"name": {"S": "..."}}``)."""
    value = image.get(name)
    if isinstance(value, Mapping):
        text = value.get("S")
        return text if isinstance(text, str) else None
    return None
