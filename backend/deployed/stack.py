"""A deployed stack, found by name: its CloudFormation outputs, its API key, and settings aimed at it.

``make deploy`` creates a stack from ``infra/template.yaml``; its ``Outputs`` name everything the dashboard
and the command line need (table, API URL, API key id, function, event source mapping, failure queue). With
``STREAMDESK_STACK=<name>`` the settings are completed from those outputs by :func:`resolve_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from backend.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_cloudformation import CloudFormationClient


# Output names in infra/template.yaml (tests/unit/test_template.py checks each one exists there).
OUTPUT_NAMES: dict[str, str] = {
    "api_url": "ApiUrl",
    "api_key_id": "ApiKeyId",
    "table_name": "TableName",
    "table_stream_arn": "TableStreamArn",
    "function_name": "FunctionName",
    "event_source_mapping_id": "EventSourceMappingId",
    "failure_queue_url": "FailureQueueUrl",
    "failure_queue_arn": "FailureQueueArn",
    "time_index_shards": "TimeIndexShards",
    "retention_days": "RetentionDays",
}
# Outputs a stack deployed before the rollups lacks: read when present (the rollups' readers need them).
OPTIONAL_OUTPUT_NAMES: dict[str, str] = {
    "rollups_table_name": "RollupsTableName",
    "rollups_function_name": "RollupsFunctionName",
    "rollup_write_shards": "RollupWriteShards",
}


class StackError(RuntimeError):
    """The stack cannot be read: it does not exist, lacks outputs, or no AWS credentials were found."""


@dataclass(frozen=True)
class StackOutputs:
    """What a deployed Streamdesk stack tells about itself (its CloudFormation outputs)."""

    api_url: str
    api_key_id: str
    table_name: str
    table_stream_arn: str
    function_name: str
    event_source_mapping_id: str
    failure_queue_url: str
    failure_queue_arn: str
    time_index_shards: int
    retention_days: int
    rollups_table_name: str | None = None
    rollups_function_name: str | None = None
    rollup_write_shards: int | None = None


def _describe_error(stack_name: str, error: Exception) -> StackError:
    """A message a person can act on, for what boto3 raised while reading the stack."""
    if isinstance(error, NoCredentialsError):
        return StackError(
            f"No AWS credentials found to read stack {stack_name!r}: configure them "
            "(`aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)."
        )
    if isinstance(error, NoRegionError):
        return StackError(f"No AWS region set to read stack {stack_name!r}: set STREAMDESK_REGION.")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if code == "ValidationError" and "does not exist" in message:
            return StackError(
                f"Stack {stack_name!r} does not exist in this account and region: deploy it with "
                "`make deploy`, or check STREAMDESK_STACK and STREAMDESK_REGION."
            )
        if code in ("AccessDenied", "AccessDeniedException", "UnrecognizedClientException"):
            return StackError(f"Not allowed to read stack {stack_name!r}: {message}")
        return StackError(f"Could not read stack {stack_name!r}: {code}: {message}")
    return StackError(f"Could not read stack {stack_name!r}: {error}")


def stack_outputs(stack_name: str, cloudformation_client: CloudFormationClient) -> StackOutputs:
    """The outputs of stack ``stack_name``, or :class:`StackError` saying what is wrong."""
    try:
        stacks = cloudformation_client.describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as error:
        raise _describe_error(stack_name, error) from error
    if not stacks:
        raise StackError(f"Stack {stack_name!r} does not exist.")
    stack = stacks[0]
    status = str(stack.get("StackStatus", ""))
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    missing = [name for name in OUTPUT_NAMES.values() if not outputs.get(name)]
    if missing:
        raise StackError(
            f"Stack {stack_name!r} ({status or 'unknown status'}) lacks the outputs "
            f"{', '.join(missing)}: is it a Streamdesk stack, and did its deployment finish? "
            "Run `make deploy` to create or update it."
        )
    values: dict[str, Any] = {field: outputs[name] for field, name in OUTPUT_NAMES.items()}
    values |= {field: outputs[name] for field, name in OPTIONAL_OUTPUT_NAMES.items() if outputs.get(name)}
    names = OUTPUT_NAMES | OPTIONAL_OUTPUT_NAMES
    for number in ("time_index_shards", "retention_days", "rollup_write_shards"):
        if number not in values:
            continue
        try:
            values[number] = int(values[number])
        except ValueError:
            raise StackError(
                f"Stack {stack_name!r}: output {names[number]} is {values[number]!r}, not a number."
            ) from None
    return StackOutputs(**values)


def api_key_value(api_key_id: str, apigateway_client: APIGatewayClient) -> str:
    """The secret value of the API key ``api_key_id`` (needs ``apigateway:GET`` on the key)."""
    try:
        response = apigateway_client.get_api_key(apiKey=api_key_id, includeValue=True)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "NotFoundException":
            raise StackError(f"API key {api_key_id!r} does not exist (was the stack deleted?).") from error
        raise StackError(f"Could not read API key {api_key_id!r}: {error}") from error
    except BotoCoreError as error:
        raise StackError(f"Could not read API key {api_key_id!r}: {error}") from error
    value = response.get("value")
    if not value:
        raise StackError(f"API key {api_key_id!r} has no value readable with these credentials.")
    return str(value)


def session_for(settings: Settings) -> boto3.Session:
    """A boto3 session in the settings' region, with their explicit credentials if any were given.

    Without explicit credentials boto3's usual chain applies (environment, profile, SSO, instance role).
    """
    kwargs: dict[str, Any] = {"region_name": settings.region}
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        kwargs["aws_access_key_id"] = settings.aws_access_key_id
        kwargs["aws_secret_access_key"] = settings.aws_secret_access_key
    return boto3.Session(**kwargs)


def resolve_settings(settings: Settings, session: boto3.Session | None = None) -> Settings:
    """``settings`` completed from the stack's outputs when ``settings.stack`` is set; unchanged otherwise.

    Fills table, api_url, api_key_value, time_index_shards, retention_days and, when the stack has them,
    the rollups' table, function and write shards. Raises :class:`StackError` with a human
    message when the stack is missing, incomplete, or no credentials are available.
    """
    if not settings.stack:
        return settings
    session = session or session_for(settings)
    try:
        cloudformation = session.client("cloudformation", region_name=settings.region)
        apigateway = session.client("apigateway", region_name=settings.region)
    except BotoCoreError as error:
        raise _describe_error(settings.stack, error) from error
    outputs = stack_outputs(settings.stack, cloudformation)
    key = api_key_value(outputs.api_key_id, apigateway)
    resolved = settings.model_copy(
        update={
            "table": outputs.table_name,
            "api_url": outputs.api_url,
            "api_key_value": key,
            "time_index_shards": outputs.time_index_shards,
            "retention_days": outputs.retention_days,
            "rollups_table_name": outputs.rollups_table_name,
            "rollup_write_shards": outputs.rollup_write_shards,
            "rollups_function_name": outputs.rollups_function_name,
        }
    )
    _forget_cached_properties(resolved)
    return resolved


def _forget_cached_properties(settings: Settings) -> None:
    """Drop values a ``cached_property`` computed on the original before the copy.

    ``model_copy`` copies the instance ``__dict__``, where ``cached_property`` keeps its result: without
    this, ``resolved.api_key`` would still answer the local key read (or generated) before resolution.
    """
    for name in dir(type(settings)):
        if isinstance(getattr(type(settings), name, None), cached_property):
            settings.__dict__.pop(name, None)
