"""A TTL deletion in DynamoDB Local reaches the function as AWS sends it: REMOVE by the DynamoDB service.

DynamoDB Local 3.3 writes the record with eventName UNKNOWN_TO_SDK_VERSION, no userIdentity, and the
index key attributes among its Keys; the trigger twin must repair all three. (It also only expires items
that have every index key attribute, so the item below carries them.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from backend.local.trigger import Trigger
from backend.settings import Settings
from backend.template import Template
from tests.integration.test_trigger_delivery import fixture_esm, invocations

TTL_DEADLINE_SECONDS = 30.0


def test_ttl_deletion_reaches_the_function_as_a_service_remove(
    ddb: Any, table_name: str, settings: Settings, template: Template, tmp_path: Path
) -> None:
    record_path = tmp_path / "invocations.jsonl"
    now_ms = int(time.time() * 1000)
    ddb.put_item(
        TableName=table_name,
        Item={
            "id": {"S": "expired"},
            "status": {"S": "SUCCEEDED"},
            "createdAt": {"N": str(now_ms)},
            "timeBucket": {"S": f"{now_ms // 86_400_000}:0"},
            "stateBucket": {"S": "SUCCEEDED:0"},
            "ttl": {"N": str(now_ms // 1000 - 60)},
        },
    )
    esm = fixture_esm(template, settings, record_path, filter_patterns=())  # filters bypassed

    def removes() -> list[dict[str, Any]]:
        return [r for c in invocations(record_path) for r in c["records"] if r["eventName"] != "INSERT"]

    with Trigger(settings, template, esm=esm) as trigger:
        deadline = time.monotonic() + TTL_DEADLINE_SECONDS
        while not removes():
            assert time.monotonic() < deadline, "DynamoDB Local did not expire the item in time"
            trigger.poll_once()
            time.sleep(0.25)

    (remove,) = removes()
    assert remove["eventName"] == "REMOVE"
    assert remove["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert remove["dynamodb"]["Keys"] == {"id": {"S": "expired"}}
    assert remove["dynamodb"]["OldImage"]["status"] == {"S": "SUCCEEDED"}
    assert "NewImage" not in remove["dynamodb"]

    # With the template's filters, the same records never invoke the function (a fresh checkpoint dir).
    filtered_settings = settings.model_copy(update={"data_dir": tmp_path / "filtered"})
    filtered_path = tmp_path / "filtered.jsonl"
    with Trigger(filtered_settings, template, esm=fixture_esm(template, settings, filtered_path)) as other:
        other.poll_once()
        assert other.state()["filteredOut"] == 2  # the INSERT of a SUCCEEDED item, and the REMOVE
    assert invocations(filtered_path) == []
