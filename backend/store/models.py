"""What the data layer hands out: typed request summaries and details, list filters and pages, table facts.

No DynamoDB type appears here: :mod:`backend.store.items` turns typed items into these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from streamdesk_processor.item import MS_PER_DAY, Status

OPEN_STATES: Final[frozenset[str]] = frozenset({Status.PENDING, Status.PROCESSING, Status.FAILED})
# A filter state for requests whose status is missing or not one of Status.
UNKNOWN_STATE: Final = "UNKNOWN"
FILTER_STATES: Final[frozenset[str]] = frozenset({*Status, UNKNOWN_STATE})
DEFAULT_RANGE_MS: Final = MS_PER_DAY  # lists (and exports) without a range show the last 24 hours


@dataclass(frozen=True)
class RequestSummary:
    """What a list shows about one request (never the body)."""

    id: str
    status: str  # raw value, "" if missing
    created_at: int | None  # epoch ms
    started_at: int | None
    finished_at: int | None
    updated_at: int | None
    attempts: int
    ttl: int | None  # epoch SECONDS
    error_type: str | None
    error_message: str | None
    error_step: str | None
    redriven_at: int | None
    malformed: tuple[str, ...] = ()  # attributes missing or of the wrong type


@dataclass(frozen=True)
class RequestDetail:
    """Everything about one request."""

    summary: RequestSummary
    body: str | None
    steps: dict[str, dict[str, Any]]
    result: dict[str, str]
    error: dict[str, Any] | None  # type, message, step, traceback, transient
    last_error: dict[str, Any] | None
    # Every attribute as plain Python: numbers -> int/float, sets -> sorted lists, binary -> base64 text.
    attributes: dict[str, Any]


@dataclass(frozen=True)
class RequestFilter:
    """What a list shows.

    ``states``: raw status values (``Status``) and/or ``"UNKNOWN"`` (missing or odd status); empty = all.
    Only open states (PENDING, PROCESSING, FAILED) -> every such request whatever its age unless a range is
    given; otherwise the range (default: the last 24 hours).
    ``request_id``: one exact id; the other criteria are then ignored.
    ``text``: case-insensitive substring of the request body or of the error message.
    """

    states: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None
    request_id: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[RequestSummary]
    next_token: str | None  # opaque; pass back for the next page; None on the last page
    examined: int  # items DynamoDB read for this page


@dataclass(frozen=True)
class TableInfo:
    name: str
    status: str
    item_count: int  # approximate (DynamoDB refreshes it about every six hours)
    stream_enabled: bool
    stream_view_type: str | None
    ttl_status: str | None
    ttl_attribute: str | None
    latest_stream_arn: str | None = None
