"""What one stream record changes in the rollups, derived from its old and new image (docs/rollups.md).

``old`` is the status before (None for an INSERT), ``new`` the status after (None for a REMOVE):

- accepted:  INSERT whose new status is PENDING, at ``createdAt``
- started:   new status PROCESSING with more ``attempts`` than before, at ``startedAt``
- succeeded: new SUCCEEDED, old anything else, at ``finishedAt``
- failed:    new FAILED, old anything but FAILED or RESOLVED (a reopened failure failed once already), at
             ``finishedAt`` (and its error group, same bucket)
- retried:   old PROCESSING, new PENDING (the processor handing a transient failure back), at ``updatedAt``
- redriven:  old FAILED, new PENDING (a person), at ``redrivenAt``
- expired:   REMOVE by the DynamoDB service (TTL), at the record's creation time
- cancelled: old PENDING, new CANCELLED, at ``finishedAt`` (the cancel sets it), else ``updatedAt``
- resolved:  old FAILED, new RESOLVED, at ``resolution.at``, else ``updatedAt``
- reopened:  old RESOLVED, new FAILED (a person retrying a closed failure), at ``updatedAt``; not a failure
             again (it was counted when it failed), but it enters the open failures again
- open failures gauge: +1 when FAILED is entered (a failure, or a resolved one reopened), -1 when it is left
  (redrive, resolve, or the item deleted)

Latencies are taken when a request finishes (succeeded or failed), in the finished bucket, exactly as the
dashboard computes them from an item (``backend.computed.stats.latency_frame``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamdesk_processor import item
from streamdesk_processor.item import Status

from streamdesk_rollups.error_groups import NO_ERROR_TYPE, group_key, normalise_message
from streamdesk_rollups.schema import Stage, Transition, ledger_pk, padded_sequence, stream_label

INSERT, MODIFY, REMOVE = "INSERT", "MODIFY", "REMOVE"
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class BadRecord(ValueError):
    """A record that cannot come from the requests table's stream: it fails the batch, loudly."""


@dataclass(frozen=True)
class ErrorGroup:
    key: str
    error_type: str
    pattern: str


@dataclass(frozen=True)
class Change:
    """One record's contribution. ``sequence`` is padded (``schema.padded_sequence``)."""

    request_id: str
    sequence: str
    ledger_key: str  # the ledger entry that holds this request's mark in this stream
    transitions: tuple[tuple[Transition, int], ...] = ()  # (transition, at epoch ms)
    latencies: tuple[tuple[Stage, int], ...] = ()  # (stage, ms), counted at ``finished_at``
    finished_at: int | None = None
    error_group: ErrorGroup | None = None
    open_failures: int = 0  # the gauge's delta

    @property
    def empty(self) -> bool:
        return not self.transitions and not self.open_failures


def change_of(record: Mapping[str, Any]) -> Change:
    """The rollup change a Lambda-shaped DynamoDB stream record carries (possibly empty)."""
    event_name = record.get("eventName")
    if event_name not in (INSERT, MODIFY, REMOVE):
        raise BadRecord(f"stream record {record.get('eventID')!r} has an unknown eventName {event_name!r}")
    stream = record.get("dynamodb")
    if not isinstance(stream, Mapping):
        raise BadRecord(f"stream record {record.get('eventID')!r} has no 'dynamodb' section")
    try:
        sequence = padded_sequence(str(stream.get("SequenceNumber") or ""))
    except ValueError as error:
        raise BadRecord(f"stream record {record.get('eventID')!r}: {error}") from None
    old = _image(stream, "OldImage") if event_name != INSERT else {}
    new = _image(stream, "NewImage") if event_name != REMOVE else {}
    request_id = _s(stream.get("Keys") or {}, item.ID) or _s(new or old, item.ID)
    if not request_id:
        raise BadRecord(f"stream record {sequence.lstrip('0')} carries no '{item.ID}' key")
    created = stream.get("ApproximateCreationDateTime")
    record_ms = int(float(created) * 1000) if isinstance(created, int | float) else None
    by_ttl = (record.get("userIdentity") or {}).get("principalId") == TTL_PRINCIPAL
    ledger_key = ledger_pk(stream_label(record.get("eventSourceARN")), request_id)
    return _derive(request_id, sequence, ledger_key, old, new, event_name, by_ttl, record_ms)


def _derive(
    request_id: str,
    sequence: str,
    ledger_key: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    event_name: str,
    by_ttl: bool,
    record_ms: int | None,
) -> Change:
    old_status, new_status = _s(old, item.STATUS), _s(new, item.STATUS)
    found: list[tuple[Transition, int | None]] = []
    if event_name == INSERT and new_status == Status.PENDING:
        found.append((Transition.ACCEPTED, _n(new, item.CREATED_AT)))
    if new_status == Status.PROCESSING and (_n(new, item.ATTEMPTS) or 0) > (_n(old, item.ATTEMPTS) or 0):
        found.append((Transition.STARTED, _n(new, item.STARTED_AT)))
    # A resolved failure reopened for a retry (RESOLVED -> FAILED) failed once already: not a new failure.
    finished = new_status in (Status.SUCCEEDED, Status.FAILED) and old_status not in (
        new_status,
        Status.RESOLVED,
    )
    if finished:
        outcome = Transition.SUCCEEDED if new_status == Status.SUCCEEDED else Transition.FAILED
        found.append((outcome, _n(new, item.FINISHED_AT)))
    if old_status == Status.PROCESSING and new_status == Status.PENDING:
        found.append((Transition.RETRIED, _n(new, item.UPDATED_AT)))
    if old_status == Status.FAILED and new_status == Status.PENDING:
        found.append((Transition.REDRIVEN, _n(new, item.REDRIVEN_AT) or _n(new, item.UPDATED_AT)))
    if event_name == REMOVE and by_ttl:
        found.append((Transition.EXPIRED, record_ms or _ttl_ms(old)))
    if old_status == Status.PENDING and new_status == Status.CANCELLED:
        found.append((Transition.CANCELLED, _n(new, item.FINISHED_AT) or _n(new, item.UPDATED_AT)))
    if old_status == Status.FAILED and new_status == Status.RESOLVED:
        found.append((Transition.RESOLVED, resolved_at(new) or _n(new, item.UPDATED_AT)))
    if old_status == Status.RESOLVED and new_status == Status.FAILED:
        found.append((Transition.REOPENED, _n(new, item.UPDATED_AT)))
    transitions = tuple((kind, _when(kind, at, record_ms, sequence)) for kind, at in found)
    gauge = int(new_status == Status.FAILED) - int(old_status == Status.FAILED)
    finished_at = dict(transitions).get(Transition.SUCCEEDED) or dict(transitions).get(Transition.FAILED)
    return Change(
        request_id=request_id,
        sequence=sequence,
        ledger_key=ledger_key,
        transitions=transitions,
        latencies=latencies(new) if finished else (),
        finished_at=finished_at,
        error_group=error_group(new) if new_status == Status.FAILED and finished else None,
        open_failures=gauge,
    )


def latencies(image: Mapping[str, Any]) -> tuple[tuple[Stage, int], ...]:
    """Queue wait, processing and end to end of a finished item (the rule of
    ``backend.computed.stats.latency_frame``); empty when a timestamp is missing. Negative spans (clocks
    apart) count as 0."""
    created, started = _n(image, item.CREATED_AT), _n(image, item.STARTED_AT)
    finished = _n(image, item.FINISHED_AT)
    if created is None or started is None or finished is None:
        return ()
    redriven = _n(image, item.REDRIVEN_AT)
    entered = max(created, redriven or created)
    if started < entered:
        entered = created
    return (
        (Stage.QUEUE_WAIT, max(0, started - entered)),
        (Stage.PROCESSING, max(0, finished - started)),
        (Stage.END_TO_END, max(0, finished - entered)),
    )


def resolved_at(image: Mapping[str, Any]) -> int | None:
    """When a RESOLVED item was closed (its ``resolution`` map's ``at``), or None."""
    resolution = image.get(item.RESOLUTION)
    fields = resolution.get("M") if isinstance(resolution, Mapping) else None
    return _n(fields, item.RESOLUTION_AT) if isinstance(fields, Mapping) else None


def error_group(image: Mapping[str, Any]) -> ErrorGroup:
    """The failure group of a FAILED item, keyed as the dashboard's failures page keys it."""
    error = image.get(item.ERROR, {}).get("M", {}) if isinstance(image.get(item.ERROR), Mapping) else {}
    error_type, message = _s(error, item.ERROR_TYPE), _s(error, item.ERROR_MESSAGE)
    return ErrorGroup(
        key=group_key(error_type, message),
        error_type=error_type or NO_ERROR_TYPE,
        pattern=normalise_message(message),
    )


def _when(kind: Transition, at: int | None, record_ms: int | None, sequence: str) -> int:
    """The transition's time: the item's own timestamp, else the record's creation time."""
    when = at if at is not None else record_ms
    if when is None:
        raise BadRecord(f"stream record {sequence.lstrip('0')}: no time for the {kind.value} transition")
    return when


def _image(stream: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    image = stream.get(name)
    if image is None:
        raise BadRecord(f"a stream record without its {name}: the stream must carry NEW_AND_OLD_IMAGES")
    if not isinstance(image, Mapping):
        raise BadRecord(f"{name} is not a DynamoDB item")
    return image


def _s(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    text = value.get("S") if isinstance(value, Mapping) else None
    return text if isinstance(text, str) else None


def _n(image: Mapping[str, Any], name: str) -> int | None:
    value = image.get(name)
    raw = value.get("N") if isinstance(value, Mapping) else None
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        raise BadRecord(f"attribute {name!r} is not a number: {raw!r}") from None


def _ttl_ms(image: Mapping[str, Any]) -> int | None:
    ttl = _n(image, item.TTL)
    return ttl * 1000 if ttl is not None else None
