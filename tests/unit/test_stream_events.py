"""Streams API records -> records exactly as Lambda delivers them (the shape AWS documents)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from backend.local.stream_events import (
    TTL_USER_IDENTITY,
    approximate_arrival,
    to_lambda_record,
)

STREAM_ARN = "arn:aws:dynamodb:ddblocal:000000000000:table/T/stream/2026-11-27T00:00:00.000"

# The sample AWS documents: what Lambda hands the function for one INSERT.
LAMBDA_SAMPLE: dict[str, Any] = {
    "eventID": "c4ca4238a0b923820dcc509a6f75849b",
    "eventName": "INSERT",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1795762320,
        "Keys": {"id": {"S": "abc"}},
        "NewImage": {"id": {"S": "abc"}, "status": {"S": "PENDING"}},
        "SequenceNumber": "111",
        "SizeBytes": 26,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
    "eventSourceARN": STREAM_ARN,
}


def _boto3_insert() -> dict[str, Any]:
    """The same record as boto3's GetRecords returns it from DynamoDB Local (datetime, ddblocal)."""
    return {
        "eventID": "c4ca4238a0b923820dcc509a6f75849b",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "ddblocal",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime.fromtimestamp(1795762320, UTC),
            "Keys": {"id": {"S": "abc"}},
            "NewImage": {"id": {"S": "abc"}, "status": {"S": "PENDING"}},
            "SequenceNumber": "111",
            "SizeBytes": 26,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


# Recorded from DynamoDB Local 3.3 (GetRecords through boto3) after TTL deleted an item: unknown event
# name, no userIdentity, and the index key attributes listed among the Keys.
RECORDED_TTL_DELETION: dict[str, Any] = {
    "eventID": "7eb3e7f1-184d-41b8-b198-550769e3fe80",
    "eventName": "UNKNOWN_TO_SDK_VERSION",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "ddblocal",
    "dynamodb": {
        "ApproximateCreationDateTime": datetime(2026, 11, 27, 7, 34, tzinfo=UTC),
        "Keys": {
            "createdAt": {"N": "1"},
            "stateBucket": {"S": "X:1"},
            "timeBucket": {"S": "0:1"},
            "id": {"S": "x1"},
        },
        "OldImage": {
            "createdAt": {"N": "1"},
            "stateBucket": {"S": "X:1"},
            "timeBucket": {"S": "0:1"},
            "id": {"S": "x1"},
            "ttl": {"N": "1795764835"},
            "status": {"S": "SUCCEEDED"},
        },
        "SequenceNumber": "000000000000000000002",
        "SizeBytes": 104,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
}


def test_insert_matches_the_lambda_sample() -> None:
    converted = to_lambda_record(_boto3_insert(), STREAM_ARN, region="us-east-1", key_names={"id"})
    assert converted == LAMBDA_SAMPLE
    assert list(converted) == list(LAMBDA_SAMPLE)  # same key order as AWS
    assert isinstance(converted["dynamodb"]["ApproximateCreationDateTime"], int)
    assert "userIdentity" not in converted


def test_region_is_kept_without_override() -> None:
    assert to_lambda_record(_boto3_insert(), STREAM_ARN)["awsRegion"] == "ddblocal"


def test_ttl_deletion_becomes_a_service_remove() -> None:
    converted = to_lambda_record(RECORDED_TTL_DELETION, STREAM_ARN, region="us-east-1", key_names={"id"})
    assert converted["eventName"] == "REMOVE"
    assert converted["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert converted["dynamodb"]["Keys"] == {"id": {"S": "x1"}}
    assert converted["dynamodb"]["OldImage"]["status"] == {"S": "SUCCEEDED"}
    assert converted["dynamodb"]["ApproximateCreationDateTime"] == 1795764840
    assert "NewImage" not in converted["dynamodb"]


def test_user_remove_is_not_a_ttl_deletion() -> None:
    record = {**_boto3_insert(), "eventName": "REMOVE"}
    converted = to_lambda_record(record, STREAM_ARN)
    assert converted["eventName"] == "REMOVE" and "userIdentity" not in converted
    aws_ttl = {**record, "userIdentity": dict(TTL_USER_IDENTITY)}
    assert to_lambda_record(aws_ttl, STREAM_ARN)["userIdentity"] == TTL_USER_IDENTITY


def test_binary_values_are_base64_as_in_lambda_json() -> None:
    record = _boto3_insert()
    record["dynamodb"]["NewImage"] = {
        "b": {"B": b"\x00\x01"},
        "bs": {"BS": [b"\xff"]},
        "m": {"M": {"inner": {"B": b"hi"}}},
        "l": {"L": [{"B": b"x"}, {"S": "s"}]},
    }
    image = to_lambda_record(record, STREAM_ARN)["dynamodb"]["NewImage"]
    assert image["b"] == {"B": base64.b64encode(b"\x00\x01").decode()}
    assert image["bs"] == {"BS": ["/w=="]}
    assert image["m"] == {"M": {"inner": {"B": "aGk="}}}
    assert image["l"] == {"L": [{"B": "eA=="}, {"S": "s"}]}


def test_arrival_of_a_minute_rounded_time_is_bounded_by_the_first_read() -> None:
    minute = datetime(2026, 11, 27, 7, 34, tzinfo=UTC)
    record = {"dynamodb": {"ApproximateCreationDateTime": minute}}
    # Read 12 s into the minute: it arrived at most then (DynamoDB Local rounds down to the minute).
    assert approximate_arrival(record, minute.timestamp() + 12) == minute.timestamp() + 12
    # Read long after: it arrived within the minute of its rounded time.
    assert approximate_arrival(record, minute.timestamp() + 600) == minute.timestamp() + 60
    # A time to the second (AWS) is taken as it is.
    exact = {"dynamodb": {"ApproximateCreationDateTime": datetime(2026, 11, 27, 7, 34, 5, tzinfo=UTC)}}
    assert approximate_arrival(exact, minute.timestamp() + 600) == minute.timestamp() + 5
