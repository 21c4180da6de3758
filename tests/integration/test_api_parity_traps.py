"""The AWS traps the template avoids, reproduced by the twin when a modified template walks into them.

docs/architecture.md: "a test shows that the twin reproduces the trap when the template does not avoid
it". Each test writes a modified copy of infra/template.yaml to tmp_path and runs the real server on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.settings import Settings
from backend.template import TEMPLATE_PATH, LocalValues, Template
from tests.api_fixtures import running_api

AUTH = {"x-api-key": "test-key-0123456789"}
REPLACE_ALL = """.replaceAll("\\\\'", "'")"""
PUT_ID_LINE = "#set($id = $context.extendedRequestId)"
PUT_ACCEPTED = """{"id": "$context.extendedRequestId", "status": "PENDING"}"""
# The first occurrence is the branch without Idempotency-Key. A write needs some condition: "always true".
CONDITION = "#set($condition = 'attribute_not_exists(id)')"
NO_CONDITION = "#set($condition = 'attribute_exists(id) OR attribute_not_exists(id)')"
# The body is written only if absent; a plain SET is what a template without that care would do.
SET_BODY_IF_ABSENT = "#request = if_not_exists(#request, :request)"
SET_BODY = "#request = :request"


def modified_template(tmp_path: Path, table_name: str, *edits: tuple[str, str]) -> Template:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, f"the template no longer contains {old!r}: update this test"
        text = text.replace(old, new, 1)
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return Template.load(path=path, local=LocalValues(refs={"RequestsTable": table_name}))


def put_section_without_error_mappings(text: str) -> str:
    """The PUT integration's responses reduced to the default 202 (no 4xx/5xx selection patterns)."""
    start = text.index("                  # Selected on DynamoDB's HTTP status code.")
    end = text.index('                  default:\n                    statusCode: "202"')
    return text[start:end]


@pytest.fixture()
def table_item(ddb: Any, table_name: str) -> Iterator[Any]:
    def get(request_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = ddb.get_item(
            TableName=table_name, Key={"id": {"S": request_id}}, ConsistentRead=True
        ).get("Item")
        return item

    yield get


def test_keying_on_request_id_lets_a_client_choose_and_collide_ids(
    settings: Settings, table_name: str, tmp_path: Path, table_item: Any
) -> None:
    template = modified_template(
        tmp_path,
        table_name,
        (PUT_ID_LINE, PUT_ID_LINE.replace("extendedRequestId", "requestId")),
        (PUT_ACCEPTED, PUT_ACCEPTED.replace("extendedRequestId", "requestId")),
    )
    headers = {**AUTH, "x-amzn-RequestId": "attacker-chosen"}
    with running_api(settings, template) as base_url:
        first = httpx.put(f"{base_url}/requests", json={"n": 1}, headers=headers, timeout=20)
        assert first.status_code == 202
        assert first.json()["id"] == "attacker-chosen"  # the trap: the client chose the id
        # The conditional write still refuses the second one with the same id.
        second = httpx.put(f"{base_url}/requests", json={"n": 2}, headers=headers, timeout=20)
        assert second.status_code == 409
        assert "Conflict" in second.json()["message"]
    item = table_item("attacker-chosen")
    assert item is not None and item["request"]["S"] == '{"n":1}'


def test_without_the_condition_a_second_request_overwrites_the_first(
    settings: Settings, table_name: str, tmp_path: Path, table_item: Any
) -> None:
    template = modified_template(
        tmp_path,
        table_name,
        (PUT_ID_LINE, PUT_ID_LINE.replace("extendedRequestId", "requestId")),
        (CONDITION, NO_CONDITION),
        (SET_BODY_IF_ABSENT, SET_BODY),
    )
    headers = {**AUTH, "x-amzn-RequestId": "victim-id"}
    with running_api(settings, template) as base_url:
        first = httpx.put(f"{base_url}/requests", json={"owner": "victim"}, headers=headers, timeout=20)
        second = httpx.put(f"{base_url}/requests", json={"owner": "attacker"}, headers=headers, timeout=20)
    assert first.status_code == second.status_code == 202
    item = table_item("victim-id")
    assert item is not None and json.loads(item["request"]["S"]) == {"owner": "attacker"}


def test_without_the_replace_all_an_apostrophe_is_refused_by_dynamodb(
    settings: Settings, table_name: str, tmp_path: Path, ddb: Any
) -> None:
    broken = "$util.escapeJavaScript($input.body)" + REPLACE_ALL
    template = modified_template(tmp_path, table_name, (broken, "$util.escapeJavaScript($input.body)"))
    with running_api(settings, template) as base_url:
        refused = httpx.put(f"{base_url}/requests", json={"name": "O'Brien"}, headers=AUTH, timeout=20)
        assert refused.status_code == 400
        assert refused.json()["message"].startswith("The request could not be stored")
        assert "parse" in refused.json()["message"]  # DynamoDB's SerializationException, mapped
        fine = httpx.put(f"{base_url}/requests", json={"name": "Smith"}, headers=AUTH, timeout=20)
        assert fine.status_code == 202
    assert ddb.scan(TableName=table_name, Select="COUNT")["Count"] == 1


def test_the_project_template_stores_an_apostrophe(
    settings: Settings, template: Template, table_item: Any
) -> None:
    with running_api(settings, template) as base_url:
        accepted = httpx.put(f"{base_url}/requests", json={"name": "O'Brien"}, headers=AUTH, timeout=20)
    assert accepted.status_code == 202
    item = table_item(accepted.json()["id"])
    assert item is not None and json.loads(item["request"]["S"]) == {"name": "O'Brien"}


def test_with_only_a_default_response_an_oversized_body_is_a_silent_loss(
    settings: Settings, table_name: str, tmp_path: Path, table_item: Any
) -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    template = modified_template(tmp_path, table_name, (put_section_without_error_mappings(text), ""))
    body = json.dumps({"blob": "x" * 500_000})
    with running_api(settings, template) as base_url:
        response = httpx.put(f"{base_url}/requests", content=body.encode(), headers=AUTH, timeout=20)
    assert 200 <= response.status_code < 300  # the trap: the client is told it was accepted ...
    assert table_item(response.json()["id"]) is None  # ... and nothing was stored
