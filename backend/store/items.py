"""Typed DynamoDB items -> the data layer's models (summaries, details). Never raises on odd data: what is
missing or of the wrong type is listed in ``malformed``."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from streamdesk_processor.item import (
    ATTEMPTS,
    CREATED_AT,
    ERROR,
    ERROR_MESSAGE,
    ERROR_STEP,
    ERROR_TYPE,
    FINISHED_AT,
    ID,
    LAST_ERROR,
    REDRIVEN_AT,
    REQUEST,
    RESULT,
    STARTED_AT,
    STATUS,
    STEPS,
    TTL,
    UPDATED_AT,
    Status,
)

from backend.store.models import RequestDetail, RequestSummary

_deserializer = TypeDeserializer()


def plain(value: Any) -> Any:
    """Python value of a typed DynamoDB value or of a deserialised one, made JSON-friendly."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _TYPE_TAGS:
        value = _deserializer.deserialize(value)  # type: ignore[arg-type]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=lambda v: (str(type(v)), v))
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3's Binary
        return base64.b64encode(value.value).decode("ascii")
    return value


_TYPE_TAGS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def _number(item: dict[str, Any], name: str, bad: list[str], required: bool = False) -> int | None:
    raw = item.get(name)
    if raw is None:
        if required:
            bad.append(name)
        return None
    if "N" not in raw:
        bad.append(name)
        return None
    try:
        return int(Decimal(raw["N"]))
    except (ArithmeticError, ValueError):
        bad.append(name)
        return None


def _string(typed: dict[str, Any] | None, name: str, bad: list[str], label: str | None = None) -> str | None:
    raw = (typed or {}).get(name)
    if raw is None:
        return None
    if "S" not in raw:
        bad.append(label or name)
        return None
    return str(raw["S"])


def summary_from_item(item: dict[str, Any]) -> RequestSummary:
    """A summary of a typed item (any projection). Never raises: odd attributes land in ``malformed``."""
    bad: list[str] = []
    request_id = _string(item, ID, bad)
    if request_id is None and ID not in bad:
        bad.append(ID)
    status = _string(item, STATUS, bad)
    if (status is None or status not in Status.__members__.values()) and STATUS not in bad:
        bad.append(STATUS)
    created_at = _number(item, CREATED_AT, bad, required=True)
    started_at = _number(item, STARTED_AT, bad)
    finished_at = _number(item, FINISHED_AT, bad)
    updated_at = _number(item, UPDATED_AT, bad)
    attempts = _number(item, ATTEMPTS, bad)
    ttl = _number(item, TTL, bad)
    redriven_at = _number(item, REDRIVEN_AT, bad)
    error_map: dict[str, Any] | None = None
    raw_error = item.get(ERROR)
    if raw_error is not None:
        if "M" in raw_error:
            error_map = raw_error["M"]
        else:
            bad.append(ERROR)
    return RequestSummary(
        id=request_id or "",
        status=status or "",
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        updated_at=updated_at,
        attempts=attempts if attempts is not None else 0,
        ttl=ttl,
        error_type=_string(error_map, ERROR_TYPE, bad, f"{ERROR}.{ERROR_TYPE}"),
        error_message=_string(error_map, ERROR_MESSAGE, bad, f"{ERROR}.{ERROR_MESSAGE}"),
        error_step=_string(error_map, ERROR_STEP, bad, f"{ERROR}.{ERROR_STEP}"),
        redriven_at=redriven_at,
        malformed=tuple(bad),
    )


def _steps(value: Any) -> dict[str, dict[str, Any]]:
    """Completed steps as name -> details, from the map the processor writes (or an older list)."""
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, dict) else {"value": v} for k, v in value.items()}
    if isinstance(value, list):
        steps: dict[str, dict[str, Any]] = {}
        for position, entry in enumerate(value):
            if isinstance(entry, dict):
                details = dict(entry)
                steps[str(details.pop("name", position))] = details
            else:
                steps[str(entry)] = {}
        return steps
    return {}


def detail_from_item(item: dict[str, Any]) -> RequestDetail:
    """Every attribute of a typed item. Never raises."""
    summary = summary_from_item(item)
    attributes = {name: plain(value) for name, value in item.items()}
    malformed = list(summary.malformed)
    body = attributes.get(REQUEST)
    if body is not None and not isinstance(body, str):
        malformed.append(REQUEST)
        body = None
    error = attributes.get(ERROR)
    last_error = attributes.get(LAST_ERROR)
    if last_error is not None and not isinstance(last_error, dict):
        malformed.append(LAST_ERROR)
    result = attributes.get(RESULT)
    if result is not None and not isinstance(result, dict):
        malformed.append(RESULT)
    steps = attributes.get(STEPS)
    if steps is not None and not isinstance(steps, dict | list):
        malformed.append(STEPS)
    if len(malformed) != len(summary.malformed):
        summary = RequestSummary(**{**summary.__dict__, "malformed": tuple(malformed)})
    return RequestDetail(
        summary=summary,
        body=body,
        steps=_steps(steps),
        result={str(k): str(v) for k, v in result.items()} if isinstance(result, dict) else {},
        error=error if isinstance(error, dict) else None,
        last_error=last_error if isinstance(last_error, dict) else None,
        attributes=attributes,
    )
