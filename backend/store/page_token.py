"""The opaque page token of a list: for each index query, where the next page resumes, bound to the
filter it was made for (a token from another filter is refused)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Final

from backend.store.models import RequestFilter

TOKEN_VERSION: Final = 1


def fingerprint(flt: RequestFilter, plan: str) -> str:
    raw = json.dumps([plan, sorted(flt.states), flt.since_ms, flt.until_ms, flt.text], default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise ValueError("malformed page token") from error
    if not isinstance(payload, dict) or payload.get("v") != TOKEN_VERSION:
        raise ValueError("malformed page token")
    return payload
