"""``streamdesk resolve`` and ``streamdesk cancel`` against DynamoDB Local, with the same confirmation rules
as ``retry``: one id runs at once, a group or several ids ask first (and without a terminal, do nothing
unless --yes); bad input is refused before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from streamdesk_processor import item as attr

from backend.cli import main
from backend.local.trigger import Trigger
from backend.operations import Pipeline
from backend.settings import Settings
from backend.template import Template
from tests.integration.test_retry_flow import failing_requests, statuses
from tests.processor_events import put_pending_item, read_item


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name in ("STREAMDESK_STACK", "STREAMDESK_DYNAMODB_ENDPOINT", "STREAMDESK_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMDESK_SECRETS_FILE", str(settings.data_dir / "no-secrets.toml"))
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(settings.dynamodb_port))
    monkeypatch.setenv("STREAMDESK_TABLE", settings.table)
    monkeypatch.setenv("STREAMDESK_DATA_DIR", str(settings.data_dir))


@pytest.fixture()
def trigger(settings: Settings, template: Template) -> Iterator[Trigger]:
    with Trigger(settings, template) as instance:
        yield instance


def test_streamdesk_resolve_an_error_group_with_a_reason(
    ddb: Any,
    settings: Settings,
    trigger: Trigger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = failing_requests(ddb, settings.table, 2)
    other = put_pending_item(ddb, settings.table, {"simulate": {"fail": "address unknown"}})
    trigger.poll_once()
    key = next(g.key for g in Pipeline.connect(settings).failure_groups() if g.pattern.startswith("card"))

    # Without --yes and without a terminal: nothing happens.
    assert main(["resolve", "--error-group", key, "--reason", "duplicate"]) == 1
    assert "add --yes" in capsys.readouterr().err
    assert statuses(ddb, settings.table, ids) == ["FAILED"] * 2

    args = [
        "resolve",
        "--error-group",
        key,
        "--reason",
        "duplicate",
        "--note",
        "T-1",
        "--yes",
        "--as",
        "night",
    ]
    assert main(args) == 0
    assert "2 resolved" in capsys.readouterr().out
    assert statuses(ddb, settings.table, [*ids, other]) == ["RESOLVED", "RESOLVED", "FAILED"]
    stored = read_item(ddb, settings.table, ids[0])
    assert stored[attr.RESOLUTION][attr.RESOLUTION_BY] == "night"
    assert [group.count for group in Pipeline.connect(settings).failure_groups()] == [1]

    # One id needs no confirmation; it is an explicit retry of a resolved failure only through `retry`.
    assert main(["resolve", "--id", other, "--reason", "fixed by hand"]) == 0
    assert statuses(ddb, settings.table, [other]) == ["RESOLVED"]
    assert main(["retry", "--id", ids[0]]) == 0
    assert statuses(ddb, settings.table, [ids[0]]) == ["PENDING"]


def test_streamdesk_resolve_refuses_bad_input_before_any_write(
    ddb: Any,
    settings: Settings,
    trigger: Trigger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = failing_requests(ddb, settings.table, 1)
    trigger.poll_once()
    assert main(["resolve", "--id", ids[0], "--reason", "other"]) == 2
    assert "needs a note" in capsys.readouterr().err
    assert main(["resolve", "--id", ids[0], "--reason", "duplicate", "--note", "x" * 501]) == 2
    assert "at most 500 characters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["resolve", "--id", ids[0], "--reason", "because"])
    assert statuses(ddb, settings.table, ids) == ["FAILED"]


def test_streamdesk_cancel(ddb: Any, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    first, second, third = (put_pending_item(ddb, settings.table, {"n": n}) for n in range(3))
    assert main(["cancel", "--id", first, "--id", second]) == 1  # two ids ask first; no terminal here
    assert statuses(ddb, settings.table, [first, second]) == ["PENDING"] * 2

    assert main(["cancel", "--id", first, "--as", "support"]) == 0
    assert "1 cancelled" in capsys.readouterr().out
    assert read_item(ddb, settings.table, first)[attr.TRAIL][0][attr.TRAIL_BY] == "support"

    # Already cancelled, or unknown: said per request, and the command fails.
    assert main(["cancel", "--id", first, "--id", third, "--id", "nope", "--yes"]) == 1
    out = capsys.readouterr().out
    assert "not pending" in out and "status is CANCELLED" in out and "not found" in out
    assert statuses(ddb, settings.table, [first, second, third]) == ["CANCELLED", "PENDING", "CANCELLED"]
