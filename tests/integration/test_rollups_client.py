"""The rollups client's Query answers (botocore's response parsing skipped, ``calls.rollups_client``) are
exactly what the plain client returns: items, counts, pages, errors; binary values go through botocore."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from backend.settings import Settings
from backend.store import calls
from backend.store.calls import dynamodb_client, rollups_client


@pytest.fixture()
def numbers_table(ddb: Any, settings: Settings) -> str:
    name = f"{settings.table}-client"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for sk in range(7):
        ddb.put_item(
            TableName=name,
            Item={
                "pk": {"S": "m:20426:0"},
                "sk": {"N": str(1_764_000_000_000 + sk * 60_000)},
                "n:accepted": {"N": str(sk * 1000)},
                "qw:-12": {"N": "3"},
                "qw:z": {"N": "1"},
                "g:0123456789ab": {"N": "-0"},
                "label": {"S": 'a "quoted" ünïcode \\ text'},
            },
        )
    yield name
    ddb.delete_table(TableName=name)


def _query(client: Any, table: str, **extra: Any) -> dict[str, Any]:
    answer = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "m:20426:0"}},
        ReturnConsumedCapacity="TOTAL",
        **extra,
    )
    answer.pop("ResponseMetadata")  # request ids and dates differ between two calls
    return dict(answer)


def test_a_query_answer_is_the_plain_clients_page_by_page(
    settings: Settings, numbers_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[bool] = []  # proof that the raw path ran (and was not silently skipped)
    original = calls._raw_query_answer

    def spy(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **kw: Any) -> None:
        original(response_dict, customized_response_dict, **kw)
        taken.append(bool(customized_response_dict))

    monkeypatch.setattr(calls, "_raw_query_answer", spy)
    plain, raw = dynamodb_client(settings), rollups_client(settings)
    assert _query(raw, numbers_table) == _query(plain, numbers_table)
    assert taken == [True]
    first_raw, first_plain = _query(raw, numbers_table, Limit=3), _query(plain, numbers_table, Limit=3)
    assert first_raw == first_plain and "LastEvaluatedKey" in first_raw
    start = first_raw["LastEvaluatedKey"]
    assert _query(raw, numbers_table, Limit=3, ExclusiveStartKey=start) == _query(
        plain, numbers_table, Limit=3, ExclusiveStartKey=start
    )


def test_errors_and_binary_values_still_go_through_botocore(
    ddb: Any, settings: Settings, numbers_table: str
) -> None:
    raw = rollups_client(settings)
    with pytest.raises(ClientError) as error:
        _query(raw, f"{numbers_table}-missing")
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    ddb.put_item(
        TableName=numbers_table,
        Item={"pk": {"S": "m:20426:0"}, "sk": {"N": "1"}, "blob": {"B": b"\x00\x01"}},
    )
    blobs = [item["blob"]["B"] for item in _query(raw, numbers_table)["Items"] if "blob" in item]
    assert blobs == [b"\x00\x01"]  # bytes, as the plain client gives them, not the wire's base64
