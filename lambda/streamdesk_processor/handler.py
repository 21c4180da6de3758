"""The Lambda entry point (``streamdesk_processor.handler.lambda_handler`` in infra/template.yaml)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from streamdesk_processor.config import ProcessorConfig, environment_key
from streamdesk_processor.log import logger
from streamdesk_processor.processor import StreamProcessor
from streamdesk_processor.slow_lane import SlowWorkQueue
from streamdesk_processor.slow_worker import SlowWorker

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


def _client_config(connections: int) -> Config:
    """Standard retries absorb throttling; the timeouts keep a dead endpoint from eating the function's
    time; a connection per record processed at once (botocore's default pool of 10 would open and drop a
    connection for every call above it)."""
    return Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=3,
        read_timeout=10,
        max_pool_connections=max(10, connections),
    )


_lock = threading.Lock()
_cached: tuple[tuple[str | None, ...], StreamProcessor, SlowWorker] | None = None


def _region() -> str | None:
    # Lambda sets AWS_REGION and AWS_DEFAULT_REGION; botocore reads only the latter, so a runner that sets
    # just AWS_REGION (as Lambda documents it) still works.
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def dynamodb_client(connections: int = 10) -> DynamoDBClient:
    """The default client: region, credentials and endpoint (AWS_ENDPOINT_URL_DYNAMODB) from the env."""
    return boto3.client("dynamodb", region_name=_region(), config=_client_config(connections))


def sqs_client(connections: int = 10) -> SQSClient:
    """The slow-work queue's client: endpoint from AWS_ENDPOINT_URL_SQS (the local SQS twin) or AWS's."""
    return boto3.client("sqs", region_name=_region(), config=_client_config(connections))


def _built() -> tuple[StreamProcessor, SlowWorker]:
    """The processor and the slow-work worker for the current environment, built at first use and rebuilt
    when the table or the endpoint settings change (the local stack and the tests run many tables in one
    process)."""
    global _cached
    key = environment_key(os.environ)
    with _lock:
        if _cached is None or _cached[0] != key:
            config = ProcessorConfig.from_env(os.environ)
            client = dynamodb_client(config.concurrency)
            queue = (
                SlowWorkQueue(sqs_client(config.concurrency), config.slow_work_queue_url)
                if config.slow_work_queue_url
                else None
            )
            processor = StreamProcessor(config, client, slow_work=queue)
            _cached = (key, processor, SlowWorker(processor, client, queue=queue))
            logger.debug("processor built", extra={"table": config.table_name})
        return _cached[1], _cached[2]


def get_processor() -> StreamProcessor:
    return _built()[0]


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(get_processor().handle(event, context))


@logger.inject_lambda_context
def slow_work_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """``SlowWorkFunction``'s entry point: SQS events of hand-off messages (docs/slow-lane.md)."""
    return _built()[1].handle(event, context)
