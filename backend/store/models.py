"""What the data layer hands out: typed request summaries and details, list filters and pages, table facts.

No DynamoDB type appears here: :mod:`backend.store.items` turns typed items into these.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from streamdesk_processor.item import (
    ERROR_MESSAGE,
    ERROR_STEP,
    ERROR_TRACEBACK,
    ERROR_TRANSIENT,
    ERROR_TYPE,
    MS_PER_DAY,
    STEP_AT,
    STEP_ATTEMPT,
    Status,
)

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

    @property
    def cancellable(self) -> bool:
        """Whether a cancel may take it: PENDING and never started (the condition of the cancel write)."""
        return self.status == Status.PENDING and self.attempts == 0


@dataclass(frozen=True)
class CompletedStep:
    """One completed step of a request."""

    name: str
    at: int | None  # epoch ms
    attempt: int | None


@dataclass(frozen=True)
class RecordedError:
    """An error recorded on a request (``error``, or ``lastError`` while retries remain)."""

    # What a person reads first, under the item's own names, only those recorded: type, message, step,
    # transient. The traceback apart: it can be kilobytes.
    summary: dict[str, Any]
    traceback: str | None

    @classmethod
    def of(cls, recorded: dict[str, Any]) -> RecordedError:
        summary_keys = (ERROR_TYPE, ERROR_MESSAGE, ERROR_STEP, ERROR_TRANSIENT)
        traceback = recorded.get(ERROR_TRACEBACK)
        return cls(
            summary={key: recorded.get(key) for key in summary_keys if key in recorded},
            traceback=str(traceback) if traceback else None,
        )


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

    @property
    def completed_steps(self) -> list[CompletedStep]:
        """The completed steps in the order they were completed (DynamoDB keeps no order in a map)."""
        steps = [
            CompletedStep(name, _whole(step.get(STEP_AT)), _whole(step.get(STEP_ATTEMPT)))
            for name, step in self.steps.items()
        ]
        return sorted(steps, key=lambda step: float("inf") if step.at is None else step.at)

    @property
    def failure(self) -> RecordedError | None:
        """The error that failed the request, if it failed."""
        return RecordedError.of(self.error) if self.error else None

    @property
    def transient_failure(self) -> RecordedError | None:
        """The latest transient error while retries remain."""
        return RecordedError.of(self.last_error) if self.last_error else None


def _whole(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


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

    def list_range(self, now_ms: int) -> tuple[int, int] | None:
        """The ``(since, until)`` a list reads at ``now_ms``, or None for a list of open states only (every
        such request whatever its age, unless a range is given): the range given, an open end closed at
        ``now_ms``, or at 24 hours before the end."""
        if self.states and self.states <= OPEN_STATES:
            return None
        until = self.until_ms if self.until_ms is not None else now_ms
        since = self.since_ms if self.since_ms is not None else until - DEFAULT_RANGE_MS
        return since, until

    def bounded(self, now_ms: int) -> RequestFilter:
        """This filter with the range a list reads said outright (so that an export covers the same)."""
        window = self.list_range(now_ms)
        return self if window is None else replace(self, since_ms=window[0], until_ms=window[1])


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
