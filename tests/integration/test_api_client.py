"""backend.api_client against the running API twin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backend.api_client import ApiClient, ApiUnreachable
from backend.local.dynamodb_local import free_port
from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api


@pytest.fixture()
def base_url(settings: Settings, template: Template) -> Iterator[str]:
    with running_api(settings, template) as url:
        yield url


def test_submit_and_get(base_url: str, settings: Settings, ddb: Any, table_name: str) -> None:
    with ApiClient(base_url, settings.api_key) as client:
        from_dict = client.submit({"order": 7, "note": "it's"})
        assert from_dict.accepted and from_dict.status_code == 202
        assert from_dict.id is not None
        assert from_dict.payload == {"id": from_dict.id, "status": "PENDING"}
        assert from_dict.elapsed_ms > 0

        text = '{"exact":  "bytes é"}'
        from_text = client.submit(text)
        assert from_text.accepted and from_text.id not in (None, from_dict.id)
        item = ddb.get_item(TableName=table_name, Key={"id": {"S": from_text.id}})["Item"]
        assert item["request"]["S"] == text

        status = client.get(from_dict.id)
        assert status.found and status.status_code == 200
        assert status.fields is not None
        assert status.fields["id"] == from_dict.id and status.fields["status"] == "PENDING"


def test_refusals_carry_the_api_message(base_url: str, settings: Settings) -> None:
    with ApiClient(base_url, settings.api_key) as client:
        refused = client.submit("[1, 2]")
        assert refused.status_code == 400 and refused.id is None and not refused.accepted
        assert "JSON object" in refused.message
        missing = client.get("no-such-id")
        assert missing.status_code == 404 and missing.fields is None and not missing.found
        assert missing.message == "No request with this id."
    with ApiClient(base_url, "wrong-key") as client:
        forbidden = client.submit({"a": 1})
        assert forbidden.status_code == 403 and forbidden.id is None
        assert "API key" in forbidden.message
        assert client.get("x").status_code == 403


def test_an_unreachable_api_raises_api_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ApiClient(url, "k", timeout=2) as client:
        with pytest.raises(ApiUnreachable, match="cannot reach the API"):
            client.submit({"a": 1})
        with pytest.raises(ApiUnreachable):
            client.get("abc")
