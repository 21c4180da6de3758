"""The local table is built from the template's definition, so schema drift breaks these tests."""

from __future__ import annotations

from typing import Any

from backend.local.table import ensure_table, table_definition, ttl_attribute
from backend.template import Template


def test_table_matches_template(ddb: Any, table_name: str, template: Template) -> None:
    described = ddb.describe_table(TableName=table_name)["Table"]
    definition = table_definition(template)
    assert described["KeySchema"] == definition["KeySchema"]
    assert described["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert {i["IndexName"] for i in described["GlobalSecondaryIndexes"]} == {"byTime", "byState"}
    ttl = ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == ttl_attribute(template) == "ttl"


def test_ensure_table_is_idempotent_and_keeps_items(ddb: Any, table_name: str, template: Template) -> None:
    ddb.put_item(TableName=table_name, Item={"id": {"S": "keep-me"}})
    ensure_table(ddb, table_name, template)
    assert ddb.get_item(TableName=table_name, Key={"id": {"S": "keep-me"}})["Item"]["id"]["S"] == "keep-me"
