"""Create or update a local table (the requests table, the rollups table) from the template's definition
(never restated here)."""

from __future__ import annotations

import logging
import time
from typing import Any

from backend.template import TABLE_ID, Template

log = logging.getLogger(__name__)

# Properties DynamoDB Local has no use for (encryption, backups); everything else is passed through.
_CREATE_TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "StreamSpecification",
)


def table_definition(template: Template, logical_id: str = TABLE_ID) -> dict[str, Any]:
    """The CreateTable arguments for one of the template's tables, as DynamoDB's API spells them."""
    props = template.properties(logical_id)
    definition = {key: props[key] for key in _CREATE_TABLE_KEYS if key in props}
    stream = definition.get("StreamSpecification")
    if stream:
        # CloudFormation implies StreamEnabled by the presence of the spec; the API wants it said.
        definition["StreamSpecification"] = {"StreamEnabled": True, **stream}
    return definition


def ttl_attribute(template: Template, logical_id: str = TABLE_ID) -> str | None:
    spec = template.properties(logical_id).get("TimeToLiveSpecification") or {}
    return str(spec["AttributeName"]) if spec.get("Enabled") else None


def ensure_table(
    client: Any, table_name: str, template: Template, logical_id: str = TABLE_ID
) -> dict[str, Any]:
    """Create the table (the requests table unless ``logical_id`` names another), or bring an existing
    one up to the template (indexes, stream, TTL).

    Returns DescribeTable's ``Table``. Idempotent: a restart of ``make up`` keeps every item.
    """
    definition = table_definition(template, logical_id)
    try:
        described = client.describe_table(TableName=table_name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        log.info("creating table %s from the template", table_name)
        client.create_table(TableName=table_name, **definition)
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.2})
        described = client.describe_table(TableName=table_name)["Table"]
    else:
        _update_indexes(client, table_name, definition, described)
        _update_stream(client, table_name, definition, described)
        described = client.describe_table(TableName=table_name)["Table"]

    attribute = ttl_attribute(template, logical_id)
    if attribute:
        ttl = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute},
            )
    return dict(described)


def _update_indexes(client: Any, table: str, definition: dict[str, Any], described: dict[str, Any]) -> None:
    existing = {index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])}
    for index in definition.get("GlobalSecondaryIndexes", []):
        if index["IndexName"] in existing:
            continue
        log.info("adding index %s to %s", index["IndexName"], table)
        client.update_table(
            TableName=table,
            AttributeDefinitions=definition["AttributeDefinitions"],
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )
        _wait_for_index(client, table, index["IndexName"])


def _wait_for_index(client: Any, table: str, index_name: str, timeout: float = 120.0) -> None:
    """A new index is CREATING for a while; queries on it fail until it is ACTIVE."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        indexes = client.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
        status = next((i.get("IndexStatus") for i in indexes if i["IndexName"] == index_name), None)
        if status == "ACTIVE":
            return
        time.sleep(0.2)
    raise RuntimeError(f"index {index_name} of {table} did not become ACTIVE within {timeout:.0f} s")


def _update_stream(client: Any, table: str, definition: dict[str, Any], described: dict[str, Any]) -> None:
    wanted = definition.get("StreamSpecification")
    current = described.get("StreamSpecification") or {}
    if wanted and not current.get("StreamEnabled"):
        client.update_table(TableName=table, StreamSpecification=wanted)
    elif wanted and current.get("StreamViewType") != wanted.get("StreamViewType"):
        raise RuntimeError(
            f"table {table} streams {current.get('StreamViewType')} but the template wants "
            f"{wanted.get('StreamViewType')}: disable the stream or delete the data dir to recreate it"
        )
