"""The command line says what is wrong in one line: a stack that does not exist, DynamoDB out of reach."""

from __future__ import annotations

import boto3
import pytest

from backend.cli import main
from backend.local.dynamodb_local import free_port
from tests.unit.test_stack import aws  # noqa: F401 - the moto fixture (CloudFormation has no local engine)


@pytest.fixture(autouse=True)
def no_streamdesk_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    for name in list(os.environ):
        if name.startswith("STREAMDESK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STREAMDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STREAMDESK_SECRETS_FILE", str(tmp_path / "none.toml"))


def test_a_missing_stack_is_one_line(
    aws: boto3.Session,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STREAMDESK_STACK", "no-such-stack")
    monkeypatch.setenv("STREAMDESK_REGION", aws.region_name)
    assert main(["retry", "--all-failed", "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("streamdesk: ") and "no-such-stack" in err
    assert "Traceback" not in err


def test_dynamodb_out_of_reach_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(free_port()))
    assert main(["retry", "--all-failed", "--yes"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("streamdesk retry: ") and "unreachable" in err
    assert "Traceback" not in err
