"""Nothing of the local stack answers on another address of this machine: DynamoDB Local, the API twin and
the SQS twin listen on 127.0.0.1 only (the whole `make up` stack is checked in
tests/e2e/test_local_stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.local.dynamodb_local import DynamoDBLocal
from backend.settings import Settings
from backend.template import Template
from tests.api_fixtures import running_api
from tests.network import answers, non_loopback_addresses
from tests.slow_lane_fixtures import running_sqs_twin


@pytest.fixture(scope="module")
def outside_addresses() -> list[str]:
    found = non_loopback_addresses()
    if not found:  # a failure, not a skip: without one the test would prove nothing
        pytest.fail("this machine has no non-loopback address to try (hostname -I)")
    return found


def test_dynamodb_local_refuses_every_non_loopback_address(
    dynamodb_local: DynamoDBLocal, outside_addresses: list[str]
) -> None:
    assert answers("127.0.0.1", dynamodb_local.port)
    assert [a for a in outside_addresses if answers(a, dynamodb_local.port)] == []


def test_the_api_twin_refuses_every_non_loopback_address(
    settings: Settings, template: Template, outside_addresses: list[str]
) -> None:
    with running_api(settings, template) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        assert answers("127.0.0.1", port)
        assert [a for a in outside_addresses if answers(a, port)] == []


def test_the_sqs_twin_refuses_every_non_loopback_address(
    tmp_path: Path, outside_addresses: list[str]
) -> None:
    with running_sqs_twin(tmp_path) as twin:
        port = int(twin.url.rsplit(":", 1)[1])
        assert answers("127.0.0.1", port)
        assert [a for a in outside_addresses if answers(a, port)] == []
