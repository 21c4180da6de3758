"""The Lambda entry point (``streamdesk_rollups.handler.lambda_handler`` in infra/template.yaml)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from streamdesk_rollups.config import RollupsConfig, environment_key
from streamdesk_rollups.consumer import RollupsConsumer
from streamdesk_rollups.log import logger
from streamdesk_rollups.metrics import metrics, publish

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)

_lock = threading.Lock()
_cached: tuple[tuple[str | None, ...], RollupsConsumer] | None = None


def dynamodb_client() -> DynamoDBClient:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return boto3.client("dynamodb", region_name=region, config=_CLIENT_CONFIG)


def get_consumer() -> RollupsConsumer:
    """Built at first use, rebuilt when the table or endpoint settings change (tests run many tables)."""
    global _cached
    key = environment_key(os.environ)
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, RollupsConsumer(RollupsConfig.from_env(os.environ), dynamodb_client()))
        return _cached[1]


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response, report = get_consumer().handle(event)
    if report is not None:
        publish(report)
    return response
