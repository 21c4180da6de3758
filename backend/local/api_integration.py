"""The API twin's integration calls: the rendered request, SigV4-signed, to DynamoDB's JSON API, answered
as API Gateway sees it (status and body, unreachable and timeout as API Gateway reports them)."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from backend.local.apigateway import GatewayReply, Route, parse_json_strict
from backend.local.sigv4 import PostSigner
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Settings

DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810"
DYNAMODB_CONTENT_TYPE = "application/x-amz-json-1.0"
MAX_DYNAMODB_CONNECTIONS = 64


class DynamoDbIntegration:
    """One shared HTTP client to DynamoDB for every request of the API twin."""

    def __init__(self, settings: Settings) -> None:
        self.dynamodb_url = settings.dynamodb_url.rstrip("/") + "/"
        self._signer = PostSigner(
            self.dynamodb_url,
            settings.aws_access_key_id or LOCAL_ACCESS_KEY,
            settings.aws_secret_access_key or LOCAL_SECRET_KEY,
            settings.region,
            "dynamodb",
        )
        self._client: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # aiohttp's connection pool costs the same per request however many clients are waiting (httpx's
        # pool bookkeeping grew with them, and made the twin the narrowest point of the local stack).
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_DYNAMODB_CONNECTIONS, ttl_dns_cache=None),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def call(self, route: Route, payload: str, context: dict[str, Any]) -> tuple[int, str]:
        """POST the rendered request to DynamoDB's JSON API; (status, body) as API Gateway sees them."""
        integration = route.integration
        started = time.perf_counter()
        try:
            status, text = await self._post(integration.action, payload, integration.timeout_ms / 1000)
        except aiohttp.ClientConnectorError as error:
            # Unreachable: nothing was stored. Answer through the template's 5xx mapping.
            context["integration"]["error"] = f"DynamoDB unreachable at {self.dynamodb_url}: {error}"
            status = 503
            text = json.dumps(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailableException",
                    "message": f"DynamoDB is unreachable at {self.dynamodb_url}",
                }
            )
        except TimeoutError as error:
            context["integration"]["error"] = f"DynamoDB did not answer in time: {error!r}"
            raise GatewayReply("INTEGRATION_TIMEOUT") from None
        except aiohttp.ClientError as error:
            context["integration"]["error"] = f"DynamoDB call failed: {error!r}"
            raise GatewayReply("INTEGRATION_FAILURE") from None
        latency = int((time.perf_counter() - started) * 1000)
        context["integration"].update(status=status, latency=latency)
        context["integrationStatus"] = status
        context["integrationLatency"] = latency
        return status, text

    async def _post(self, action: str, payload: str, timeout: float) -> tuple[int, str]:
        status, text = await self._send(action, payload, timeout)
        if status == 500:
            try:
                parse_json_strict(payload)
            except (ValueError, RecursionError) as error:
                # DynamoDB refuses a body it cannot parse with 400 SerializationException (the apostrophe
                # trap); DynamoDB Local answers 500 InternalFailure instead, so the twin answers as AWS
                # does. Checked only then: parsing every payload twice would tax the hot path.
                return 400, json.dumps(
                    {
                        "__type": "com.amazon.coral.service#SerializationException",
                        "Message": f"Could not parse request body into json: {error}",
                    }
                )
        return status, text

    async def _send(self, action: str, payload: str, timeout: float) -> tuple[int, str]:
        data = payload.encode("utf-8")
        headers = self._signer.headers(f"{DYNAMODB_TARGET_PREFIX}.{action}", DYNAMODB_CONTENT_TYPE, data)
        async with self._http().post(
            self.dynamodb_url,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0)),
        ) as response:
            return response.status, (await response.read()).decode("utf-8", errors="replace")
