"""``$context`` of one API twin request, as API Gateway fills it, and its access-log form."""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Mapping
from typing import Any

from backend.template import LOCAL_ACCOUNT_ID

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ID_ALPHABET = string.ascii_letters + string.digits


def new_extended_request_id() -> str:
    """A server-generated id (16 letters and digits, ~95 random bits); no client header can choose it."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def api_key_id(key: str) -> str:
    """``$context.identity.apiKeyId``: a stable, non-secret id of the key (on AWS: the ApiKey's id)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


def clf_time(epoch_ms: int) -> str:
    """``$context.requestTime``: CLF, e.g. ``27/Nov/2026:10:12:00 +0000`` (English months, UTC)."""
    t = time.gmtime(epoch_ms / 1000)
    clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"


def new_context(
    *,
    request_id: str,
    method: str,
    path: str,
    stage: str,
    source_ip: str,
    user_agent: str,
    epoch_ms: int,
) -> dict[str, Any]:
    """``$context`` for one request (a dict, so templates can ``#set`` into ``responseOverride``)."""
    return {
        "requestId": request_id,
        "extendedRequestId": new_extended_request_id(),
        "requestTimeEpoch": epoch_ms,
        "requestTime": clf_time(epoch_ms),
        "httpMethod": method,
        "resourcePath": None,
        "resourceId": None,
        "path": path,
        "stage": stage,
        "protocol": "HTTP/1.1",
        "apiId": "local",
        "accountId": LOCAL_ACCOUNT_ID,
        "domainName": "localhost",
        "identity": {"sourceIp": source_ip, "userAgent": user_agent, "apiKey": None, "apiKeyId": None},
        "error": {"message": "", "messageString": '""', "responseType": "", "validationErrorString": ""},
        "integration": {"status": None, "latency": None, "error": None, "requestId": None},
        "integrationStatus": None,
        "integrationLatency": None,
        "requestOverride": {"header": {}, "querystring": {}, "path": {}},
        "responseOverride": {"status": None, "header": {}},
        "status": None,
        "responseLength": None,
        "responseLatency": None,
    }


def dashes(value: Any) -> Any:
    """Access logs print ``-`` where a value is absent, as API Gateway does."""
    if isinstance(value, Mapping):
        return {k: dashes(v) for k, v in value.items()}
    return "-" if value is None or value == "" else value
