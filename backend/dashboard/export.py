"""Exports of the requests list: CSV (one row per request, body included) and JSON (every attribute as
stored), built only when a download button is clicked."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from typing import Any, Final

from streamdesk_processor.item import RESOLUTION, TRAIL

from backend.dashboard.formatting import json_default
from backend.store.models import RequestDetail

EXPORT_COLUMNS: Final = (
    "id",
    "status",
    "createdAt",
    "startedAt",
    "finishedAt",
    "updatedAt",
    "attempts",
    "ttl",
    "errorType",
    "errorMessage",
    "errorStep",
    "steps",
    "result",
    RESOLUTION,
    TRAIL,
    "request",
)


def _export_row(d: RequestDetail) -> dict[str, Any]:
    s = d.summary
    return {
        "id": s.id,
        "status": s.status,
        "createdAt": s.created_at,
        "startedAt": s.started_at,
        "finishedAt": s.finished_at,
        "updatedAt": s.updated_at,
        "attempts": s.attempts,
        "ttl": s.ttl,
        "errorType": s.error_type,
        "errorMessage": s.error_message,
        "errorStep": s.error_step,
        "steps": ",".join(d.steps),
        "result": json.dumps(d.result, ensure_ascii=False, sort_keys=True) if d.result else "",
        # Who closed a failure and why, and every action by a person, as compact JSON (as stored).
        RESOLUTION: _compact(d.attributes.get(RESOLUTION)),
        TRAIL: _compact(d.attributes.get(TRAIL)),
        "request": d.body,
    }


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=json_default) if value else ""


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), +cmd|...).
FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would take for a formula, with a leading ``'`` (OWASP's advice:
    shown as text, the value still readable); anything else as it is. Client data (bodies, error
    messages) reaches these cells."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def export_csv(details: Iterable[RequestDetail]) -> bytes:
    """CSV, one row per request, the columns of :data:`EXPORT_COLUMNS` (body included); no cell can run
    as a formula in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(EXPORT_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for detail in details:
        writer.writerow({k: spreadsheet_safe(v) for k, v in _export_row(detail).items()})
    return buffer.getvalue().encode("utf-8")


def export_json(details: Iterable[RequestDetail]) -> bytes:
    """A JSON array: every attribute of every request, as stored."""
    items = [detail.attributes for detail in details]
    return json.dumps(items, ensure_ascii=False, indent=2, default=json_default).encode("utf-8")


def deferred(make: Callable[[], bytes], what: str) -> Callable[[], bytes]:
    """Wraps an export for ``st.download_button(data=...)``: it runs only when clicked, on another
    thread where nothing can be displayed, so a failure becomes the file's content."""

    def run() -> bytes:
        try:
            return make()
        except Exception as error:  # the only place left to tell the user
            return f"The {what} export failed: {error}\n".encode()

    return run
