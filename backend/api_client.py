"""The HTTP client of the requests API, used by the dashboard's form and the command line.

It speaks the public contract only (``PUT /requests``, ``GET`` and ``DELETE /requests/{id}``, ``x-api-key``),
so it works the same against the local API twin and a deployed stage (``https://.../v1``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from streamdesk_processor import item

from backend.settings import Settings

__all__ = ["ApiClient", "ApiUnreachable", "CancelResult", "PublicRequest", "StatusResult", "SubmitResult"]


class ApiUnreachable(ConnectionError):
    """The API could not be reached (nothing listens there, or it did not answer in time)."""


@dataclass(frozen=True)
class SubmitResult:
    """The answer to ``PUT /requests``.

    ``id`` is set only when the request was accepted (202: it is stored). ``message`` is the API's
    ``message`` (or a short description), ``payload`` the decoded JSON answer (None if it was not JSON).
    """

    status_code: int
    id: str | None
    message: str
    elapsed_ms: float
    payload: dict[str, Any] | None

    @property
    def accepted(self) -> bool:
        return self.status_code == 202 and self.id is not None


@dataclass(frozen=True)
class PublicRequest:
    """A request as ``GET /requests/{id}`` shows it (the public fields carry the item's names)."""

    status: str  # "" when missing
    attempts: int
    created_at: int | None
    started_at: int | None
    finished_at: int | None
    error: dict[str, Any] | None  # type, message, step
    result: dict[str, Any] | None

    @classmethod
    def of(cls, fields: dict[str, Any]) -> PublicRequest:
        error, result = fields.get(item.ERROR), fields.get(item.RESULT)
        return cls(
            status=str(fields.get(item.STATUS, "")),
            attempts=_whole(fields.get(item.ATTEMPTS)) or 0,
            created_at=_whole(fields.get(item.CREATED_AT)),
            started_at=_whole(fields.get(item.STARTED_AT)),
            finished_at=_whole(fields.get(item.FINISHED_AT)),
            error=error if isinstance(error, dict) and error else None,
            result=result if isinstance(result, dict) and result else None,
        )

    @property
    def finished(self) -> bool:
        return self.status in item.FINAL_STATES

    @property
    def queue_wait_ms(self) -> int | None:
        return _span(self.created_at, self.started_at)

    @property
    def end_to_end_ms(self) -> int | None:
        return _span(self.created_at, self.finished_at)


def _whole(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _span(start: int | None, end: int | None) -> int | None:
    return end - start if start is not None and end is not None else None


@dataclass(frozen=True)
class StatusResult:
    """The answer to ``GET /requests/{id}``: ``fields`` are the public fields when status is 200."""

    status_code: int
    fields: dict[str, Any] | None
    message: str

    @property
    def found(self) -> bool:
        return self.status_code == 200 and self.fields is not None

    @property
    def request(self) -> PublicRequest | None:
        """The request, typed, when it was found."""
        return PublicRequest.of(self.fields) if self.found and self.fields is not None else None


@dataclass(frozen=True)
class CancelResult:
    """The answer to ``DELETE /requests/{id}``: 200 cancelled, 409 with the status it has, 404 unknown."""

    status_code: int
    status: str | None  # CANCELLED on 200; the current status on 409
    message: str

    @property
    def cancelled(self) -> bool:
        return self.status_code == 200


def _decode(response: httpx.Response) -> dict[str, Any] | None:
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _message(response: httpx.Response, payload: dict[str, Any] | None) -> str:
    if payload is not None and isinstance(payload.get("message"), str):
        return str(payload["message"])
    text = response.text.strip()
    return text[:500] if text else f"HTTP {response.status_code} {response.reason_phrase}".strip()


class ApiClient:
    """A client of one API (base URL without ``/requests``, e.g. ``http://127.0.0.1:3000``)."""

    @classmethod
    def of(cls, settings: Settings) -> ApiClient:
        """The client of the settings' API (local twin or deployed stage), with its key."""
        return cls(settings.api_base_url, settings.api_key)

    def __init__(self, base_url: str, api_key: str, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url, headers={"x-api-key": api_key}, timeout=httpx.Timeout(timeout)
        )

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise ApiUnreachable(
                f"the API at {url} did not answer in time ({error.__class__.__name__})"
            ) from error
        except httpx.TransportError as error:
            raise ApiUnreachable(f"cannot reach the API at {url}: {error}") from error

    def submit(self, body: str | dict[str, Any]) -> SubmitResult:
        """Send a request. A str is sent byte for byte (UTF-8); a dict is sent as compact JSON."""
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        started = time.perf_counter()
        response = self._send(
            "PUT", "/requests", content=text.encode("utf-8"), headers={"content-type": "application/json"}
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        payload = _decode(response)
        request_id = None
        if response.status_code == 202 and payload is not None and isinstance(payload.get("id"), str):
            request_id = payload["id"]
        message = "Accepted" if request_id is not None else _message(response, payload)
        return SubmitResult(response.status_code, request_id, message, elapsed_ms, payload)

    def get(self, request_id: str) -> StatusResult:
        """The public fields of one request (``fields`` None unless found)."""
        response = self._send("GET", f"/requests/{quote(request_id, safe='')}")
        payload = _decode(response)
        if response.status_code == 200 and payload is not None:
            return StatusResult(200, payload, "OK")
        return StatusResult(response.status_code, None, _message(response, payload))

    def cancel(self, request_id: str) -> CancelResult:
        """Cancel a request that has not started (see :class:`CancelResult` for the answers)."""
        response = self._send("DELETE", f"/requests/{quote(request_id, safe='')}")
        payload = _decode(response)
        status = payload.get(item.STATUS) if payload is not None else None
        message = "Cancelled" if response.status_code == 200 else _message(response, payload)
        return CancelResult(response.status_code, status if isinstance(status, str) else None, message)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
