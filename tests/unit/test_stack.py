"""Reading a deployed stack's outputs and API key (moto: CloudFormation and API Gateway have no local engine).

The stack is a small template in moto that yields the same output names as infra/template.yaml; the
real template's outputs are checked against :data:`backend.deployed.stack.OUTPUT_NAMES` in test_template.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from backend.deployed.stack import (
    OPTIONAL_OUTPUT_NAMES,
    OUTPUT_NAMES,
    StackError,
    StackOutputs,
    api_key_value,
    resolve_settings,
    stack_outputs,
)
from backend.settings import Settings

REGION = "eu-west-1"
STACK = "streamdesk-test"


def _stack_template(with_outputs: bool = True) -> str:
    """A stack with a real queue (so two outputs are resolved by moto) and the rest from parameters."""
    outputs: dict[str, Any] = {
        "ApiUrl": {"Value": {"Fn::Sub": "https://abc123.execute-api.${AWS::Region}.amazonaws.com/v1"}},
        "ApiKeyId": {"Value": {"Ref": "ApiKeyIdParam"}},
        "TableName": {"Value": "streamdesk-test-RequestsTable-XYZ"},
        "TableStreamArn": {
            "Value": "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
        },
        "FunctionName": {"Value": "streamdesk-test-ProcessorFunction-ABC"},
        "EventSourceMappingId": {"Value": "3f1e2d4c-0000-4000-8000-000000000001"},
        "FailureQueueUrl": {"Value": {"Ref": "FailureQueue"}},
        "FailureQueueArn": {"Value": {"Fn::GetAtt": ["FailureQueue", "Arn"]}},
        "TimeIndexShards": {"Value": {"Ref": "TimeIndexShards"}},
        "RetentionDays": {"Value": "7"},
        "RollupsTableName": {"Value": "streamdesk-test-RollupsTable-R"},
        "RollupsFunctionName": {"Value": "streamdesk-test-RollupsFunction-F"},
        "RollupWriteShards": {"Value": "8"},
    }
    template: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {
            "ApiKeyIdParam": {"Type": "String"},
            "TimeIndexShards": {"Type": "Number", "Default": "6"},
        },
        "Resources": {"FailureQueue": {"Type": "AWS::SQS::Queue"}},
    }
    if with_outputs:
        template["Outputs"] = outputs
    else:
        template["Outputs"] = {"ApiUrl": outputs["ApiUrl"]}
    return json.dumps(template)


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    """moto's AWS, with fake credentials (never real ones) and a session in REGION."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def _deploy(session: boto3.Session, *, with_outputs: bool = True) -> str:
    """Create the stack and an API key; return the key's value."""
    apigateway = session.client("apigateway")
    key = apigateway.create_api_key(name="streamdesk-test-key", enabled=True, value="k" * 40)
    session.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=_stack_template(with_outputs),
        Parameters=[{"ParameterKey": "ApiKeyIdParam", "ParameterValue": key["id"]}],
    )
    return str(key["value"])


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "region": REGION, **overrides}
    return Settings(**values)


def test_stack_outputs_reads_every_output(aws: boto3.Session) -> None:
    _deploy(aws)
    outputs = stack_outputs(STACK, aws.client("cloudformation"))
    queue_url = aws.client("sqs").list_queues()["QueueUrls"][0]
    assert outputs == StackOutputs(
        api_url=f"https://abc123.execute-api.{REGION}.amazonaws.com/v1",
        api_key_id=aws.client("apigateway").get_api_keys()["items"][0]["id"],
        table_name="streamdesk-test-RequestsTable-XYZ",
        table_stream_arn="arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-01-01T00:00:00.000",
        function_name="streamdesk-test-ProcessorFunction-ABC",
        event_source_mapping_id="3f1e2d4c-0000-4000-8000-000000000001",
        failure_queue_url=queue_url,
        failure_queue_arn=aws.client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"],
        time_index_shards=6,
        retention_days=7,
        rollups_table_name="streamdesk-test-RollupsTable-R",
        rollups_function_name="streamdesk-test-RollupsFunction-F",
        rollup_write_shards=8,
    )
    names = OUTPUT_NAMES | OPTIONAL_OUTPUT_NAMES
    assert {names[f.name] for f in fields(outputs)} == set(names.values())


def test_api_key_value_reads_the_secret(aws: boto3.Session) -> None:
    value = _deploy(aws)
    outputs = stack_outputs(STACK, aws.client("cloudformation"))
    assert api_key_value(outputs.api_key_id, aws.client("apigateway")) == value


def test_api_key_value_of_a_deleted_key_is_a_stack_error(aws: boto3.Session) -> None:
    with pytest.raises(StackError, match="does not exist"):
        api_key_value("nosuchkey", aws.client("apigateway"))


def test_resolve_settings_fills_from_the_stack(aws: boto3.Session, tmp_path: Path) -> None:
    value = _deploy(aws)
    original = _settings(tmp_path, stack=STACK)
    resolved = resolve_settings(original, aws)
    assert resolved.table == "streamdesk-test-RequestsTable-XYZ"
    assert resolved.api_base_url == f"https://abc123.execute-api.{REGION}.amazonaws.com/v1"
    assert resolved.api_key_value == value
    assert resolved.succeeded_days == 7
    assert resolved.api_key == value
    assert resolved.index_shards == 6
    assert resolved.rollups_table == "streamdesk-test-RollupsTable-R" and resolved.rollups_shards == 8
    assert resolved.rollups_function_name == "streamdesk-test-RollupsFunction-F"
    assert not resolved.is_local
    # A copy: the caller's settings are untouched.
    assert original.table == "streamdesk-requests" and original.api_key_value is None


def test_resolve_settings_does_not_keep_a_key_cached_before(aws: boto3.Session, tmp_path: Path) -> None:
    """Settings.api_key is a cached_property; a copy must not answer the local key read earlier."""
    value = _deploy(aws)
    original = _settings(tmp_path, stack=STACK, STREAMDESK_API_KEY="local-key")
    assert original.api_key == "local-key"
    assert resolve_settings(original, aws).api_key == value


def test_resolve_settings_uses_the_settings_region_by_default(aws: boto3.Session, tmp_path: Path) -> None:
    _deploy(aws)
    # No session given: one is made in the settings' region (moto answers for any region).
    resolved = resolve_settings(_settings(tmp_path, stack=STACK))
    assert resolved.table == "streamdesk-test-RequestsTable-XYZ"
    with pytest.raises(StackError, match="does not exist"):
        resolve_settings(_settings(tmp_path, stack=STACK, region="us-west-2"))


def test_without_a_stack_settings_are_unchanged(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    # No AWS call is made (no moto here: a call would fail on the network).
    assert resolve_settings(settings) is settings


def test_missing_stack_is_a_clear_error(aws: boto3.Session, tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"Stack 'nope' does not exist.*make deploy"):
        resolve_settings(_settings(tmp_path, stack="nope"), aws)


def test_stack_without_outputs_is_a_clear_error(aws: boto3.Session) -> None:
    _deploy(aws, with_outputs=False)
    with pytest.raises(StackError, match="lacks the outputs ApiKeyId, TableName") as raised:
        stack_outputs(STACK, aws.client("cloudformation"))
    assert "ApiUrl" not in str(raised.value)


def test_missing_credentials_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No credentials anywhere boto3 looks: environment, files, instance metadata.
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StackError, match="No AWS credentials found"):
        resolve_settings(_settings(tmp_path, stack=STACK))
