"""Shared fixtures: one DynamoDB Local (in memory) for the whole run, a fresh table per test from the
template's definition, and settings pointing at them."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.local.dynamodb_local import DynamoDBLocal, client, free_port
from backend.local.table import ensure_table
from backend.settings import Settings
from backend.template import LocalValues, Template

_table_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """DynamoDB Local, started by the suite (never mocked). Fails loudly if it cannot start."""
    instance = DynamoDBLocal.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def dynamodb_endpoint(dynamodb_local: DynamoDBLocal) -> str:
    return dynamodb_local.endpoint


@pytest.fixture()
def ddb(dynamodb_endpoint: str) -> Any:
    """A low-level DynamoDB client on the test instance."""
    return client(dynamodb_endpoint)


@pytest.fixture()
def table_name(ddb: Any) -> Iterator[str]:
    """A new, empty requests table, created from infra/template.yaml, for one test."""
    name = f"streamdesk-test-{os.getpid()}-{next(_table_numbers)}"
    template = Template.load(local=LocalValues(refs={"RequestsTable": name}))
    ensure_table(ddb, name, template)
    yield name
    ddb.delete_table(TableName=name)
    # The rollups table a test made beside it (``Settings.rollups_table``): tables left behind with a TTL
    # slow DynamoDB Local's TTL sweeps for every later test.
    with contextlib.suppress(ddb.exceptions.ResourceNotFoundException):
        ddb.delete_table(TableName=f"{name}-rollups")


@pytest.fixture()
def settings(dynamodb_local: DynamoDBLocal, table_name: str, tmp_path: Path) -> Settings:
    """Settings for one test: the test table, a private data dir, a fixed API key."""
    return Settings(
        dynamodb_port=dynamodb_local.port,
        sqs_port=free_port(),  # the slow lane's SQS twin, when a test runs one (each its own)
        table=table_name,
        data_dir=tmp_path / "data",
        STREAMDESK_API_KEY="test-key-0123456789",
    )


@pytest.fixture()
def template(table_name: str) -> Template:
    """The project's template, resolved for the test table."""
    return Template.load(local=LocalValues(refs={"RequestsTable": table_name}))
