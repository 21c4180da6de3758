"""SigV4 for the API twin's POSTs to DynamoDB's JSON API, in a few hashes.

botocore's ``SigV4Auth`` builds an ``AWSRequest`` and email-style header objects for every call, which cost
the twin more than its own request handling; this signs the same four headers the same way (the signing key
is derived once a day). ``tests/unit/test_sigv4.py`` checks it against botocore.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host;x-amz-date;x-amz-target"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


class PostSigner:
    """Signs ``POST /`` requests with a JSON body to one endpoint of one service."""

    def __init__(self, url: str, access_key: str, secret_key: str, region: str, service: str) -> None:
        self.host = urlsplit(url).netloc
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        self._service = service
        self._day = ""
        self._key = b""

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            key = _hmac(("AWS4" + self._secret_key).encode("utf-8"), day)
            for part in (self._region, self._service, "aws4_request"):
                key = _hmac(key, part)
            self._day, self._key = day, key
        return self._key

    def headers(
        self, target: str, content_type: str, body: bytes, now: float | None = None
    ) -> dict[str, str]:
        """The request's headers, Authorization included."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        day = amz_date[:8]
        canonical = "\n".join(
            (
                "POST",
                "/",
                "",
                f"content-type:{content_type}",
                f"host:{self.host}",
                f"x-amz-date:{amz_date}",
                f"x-amz-target:{target}",
                "",
                SIGNED_HEADERS,
                hashlib.sha256(body).hexdigest(),
            )
        )
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        to_sign = "\n".join(
            (ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
        )
        signature = hmac.new(self._signing_key(day), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        return {
            "Content-Type": content_type,
            "X-Amz-Target": target,
            "X-Amz-Date": amz_date,
            "Authorization": (
                f"{ALGORITHM} Credential={self._access_key}/{scope}, "
                f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
            ),
        }
