"""Test helpers: items as the API writes them, and DynamoDB stream records/events as Lambda delivers them.

Shared by the processor's tests and usable by others (trigger twin, end-to-end tests).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from boto3.dynamodb.types import TypeDeserializer
from streamdesk_processor import item
from streamdesk_processor.config import ProcessorConfig
from streamdesk_processor.item import Status
from streamdesk_processor.processor import StreamProcessor
from streamdesk_processor.steps import STEPS, Step

from backend.settings import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY
from backend.template import Template, default_raw_template

Image = dict[str, Any]  # an item in DynamoDB JSON ({"id": {"S": "..."}, ...})

REGION = "us-east-1"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/streamdesk-test/stream/2026-01-01T00:00:00.000"
TTL_PRINCIPAL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

_sequence = itertools.count(100_000_000_000_000_000_000)
_deserializer = TypeDeserializer()


def index_shards() -> int:
    """The template's TimeIndexShards default, as the API's VTL uses it."""
    return Template(default_raw_template()).int_parameter("TimeIndexShards")


def put_pending_item(
    ddb: Any,
    table_name: str,
    request: str | dict[str, Any],
    *,
    item_id: str | None = None,
    created_at_ms: int | None = None,
    shards: int | None = None,
) -> str:
    """Write a request exactly as the API's PUT mapping template does; return its id.

    ``request`` is the body: a dict is sent as JSON, a string is stored as given (so a test can store a
    body the API would have refused).
    """
    request_id = item_id or f"test-{uuid.uuid4().hex}"
    created = created_at_ms if created_at_ms is not None else int(time.time() * 1000)
    shard = created % (shards or index_shards())
    body = request if isinstance(request, str) else json.dumps(request)
    ddb.put_item(
        TableName=table_name,
        Item={
            item.ID: {"S": request_id},
            item.REQUEST: {"S": body},
            item.STATUS: {"S": Status.PENDING.value},
            item.STATE_BUCKET: {"S": f"{Status.PENDING.value}{item.BUCKET_SEPARATOR}{shard}"},
            item.TIME_BUCKET: {"S": f"{created // item.MS_PER_DAY}{item.BUCKET_SEPARATOR}{shard}"},
            item.CREATED_AT: {"N": str(created)},
            item.UPDATED_AT: {"N": str(created)},
            item.ATTEMPTS: {"N": "0"},
        },
        ConditionExpression="attribute_not_exists(id)",
    )
    return request_id


def get_image(ddb: Any, table_name: str, request_id: str) -> Image:
    """The item in DynamoDB JSON (empty dict if it does not exist)."""
    answer = ddb.get_item(TableName=table_name, Key={item.ID: {"S": request_id}}, ConsistentRead=True)
    return dict(answer.get("Item", {}))


def read_item(ddb: Any, table_name: str, request_id: str) -> dict[str, Any]:
    """The item as plain Python values (numbers are Decimal, which compare equal to ints)."""
    return {
        key: _deserializer.deserialize(value) for key, value in get_image(ddb, table_name, request_id).items()
    }


def stream_record(
    event_name: str,
    *,
    keys: Image,
    new_image: Image | None = None,
    old_image: Image | None = None,
    event_id: str | None = None,
    sequence_number: str | None = None,
    user_identity: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One record in the shape Lambda delivers for a NEW_AND_OLD_IMAGES stream."""
    stream: dict[str, Any] = {
        "ApproximateCreationDateTime": int(time.time()),
        "Keys": keys,
        "SequenceNumber": sequence_number or str(next(_sequence)),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        stream["NewImage"] = new_image
    if old_image is not None:
        stream["OldImage"] = old_image
    record: dict[str, Any] = {
        "eventID": event_id or uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": stream,
        "eventSourceARN": STREAM_ARN,
    }
    if user_identity is not None:
        record["userIdentity"] = user_identity
    return record


def insert_record(ddb: Any, table_name: str, request_id: str, **kwargs: Any) -> dict[str, Any]:
    """The INSERT record of an item as it is now (call it right after :func:`put_pending_item`)."""
    image = get_image(ddb, table_name, request_id)
    return stream_record("INSERT", keys={item.ID: image[item.ID]}, new_image=image, **kwargs)


def modify_record(old_image: Image, new_image: Image, **kwargs: Any) -> dict[str, Any]:
    return stream_record(
        "MODIFY", keys={item.ID: new_image[item.ID]}, new_image=new_image, old_image=old_image, **kwargs
    )


def ttl_remove_record(old_image: Image, **kwargs: Any) -> dict[str, Any]:
    """What AWS sends when TTL deletes an item: REMOVE with the DynamoDB service as the identity."""
    return stream_record(
        "REMOVE",
        keys={item.ID: old_image[item.ID]},
        old_image=old_image,
        user_identity=TTL_PRINCIPAL,
        **kwargs,
    )


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def redrive(
    ddb: Any, table_name: str, request_id: str, *, by: str = "tests", **kwargs: Any
) -> dict[str, Any]:
    """Send a FAILED request back to PENDING as a person would (the backend's own redrive) and return
    the MODIFY record the stream would carry for it."""
    from backend.roles import Actor, Role
    from backend.store.actions import Outcome, RequestActions

    old = get_image(ddb, table_name, request_id)
    result = RequestActions(ddb, table_name).redrive(request_id, Actor(by, Role.OPERATOR))
    assert result.outcome is Outcome.REDRIVEN, result
    return modify_record(old, get_image(ddb, table_name, request_id), **kwargs)


def step_attempts(image_or_item: dict[str, Any]) -> dict[str, int]:
    """Each completed step's attempt number, from an item read with ``read_item``."""
    return {name: int(entry["attempt"]) for name, entry in image_or_item[item.STEPS].items()}


def read_stream_records(endpoint: str, table_name: str) -> list[dict[str, Any]]:
    """Every record in the table's stream so far (DynamoDB Local), converted to Lambda's shape."""
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
    )
    streams = boto3.client(
        "dynamodbstreams",
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
    )
    arn = ddb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            records.extend(_lambda_shape(raw, arn) for raw in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return sorted(records, key=lambda record: int(record["dynamodb"]["SequenceNumber"]))


def _lambda_shape(raw: Any, stream_arn: str) -> dict[str, Any]:
    record = dict(raw)
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if created is not None and not isinstance(created, int | float):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())  # boto3 parses it to datetime
    record["dynamodb"] = stream
    record["eventSourceARN"] = stream_arn
    return record


@dataclass(frozen=True)
class FakeLambdaContext:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name: str = "streamdesk-processor"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:streamdesk-processor"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def lambda_context() -> LambdaContext:
    """A context for one invocation (typed as Powertools' LambdaContext, which it stands in for)."""
    return cast("LambdaContext", FakeLambdaContext(aws_request_id=str(uuid.uuid4())))


class FakeClock:
    """An injectable clock (epoch seconds) that moves only when a test says so."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sequence_numbers(response: Mapping[str, Any]) -> list[str]:
    """The identifiers of a partial-batch response, in order."""
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def sequence_of(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def make_processor(
    ddb: Any,
    table_name: str,
    *,
    clock: FakeClock | None = None,
    max_retries: int = 3,
    retention_days: int = 7,
    steps: tuple[Step, ...] = STEPS,
    sleep: Any = None,
    allow_simulate: bool = True,
) -> StreamProcessor:
    """A processor on the test table with an injected client and clock (sleeps are real unless given).

    ``simulate`` is allowed, as in the local stack (the tests drive every path with it)."""
    config = ProcessorConfig(
        table_name=table_name,
        retention_days=retention_days,
        max_retries=max_retries,
        allow_simulate=allow_simulate,
    )
    extra: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return StreamProcessor(config, ddb, steps=steps, clock=clock or FakeClock(), **extra)
