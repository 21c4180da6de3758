"""Retry (redrive) end to end against DynamoDB Local, through the real trigger twin and processor: a group of
failures is retried and ends SUCCEEDED without repeating completed steps; a retry of a request that is no
longer FAILED changes nothing; a viewer is refused; ``streamdesk retry --error-group`` does the same from
the command line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from streamdesk_processor import item as attr

from backend.cli import main
from backend.local.trigger import Trigger
from backend.operations import Pipeline
from backend.roles import Actor, PermissionDenied, Role
from backend.settings import Settings
from backend.store.actions import REDRIVE_BATCH_SIZE, ActionResult, Outcome
from backend.template import Template
from tests.processor_events import put_pending_item, read_item
from tests.seed import make_item, write_items

OPERATOR = Actor("ops@example.com", Role.OPERATOR)
VIEWER = Actor("viewer@example.com", Role.VIEWER)
FAIL_ONCE_AT_CHARGE = {"simulate": {"fail": "card declined for order 4711", "failAtStep": 3, "failTimes": 1}}


@pytest.fixture()
def trigger(settings: Settings, template: Template) -> Iterator[Trigger]:
    """The real trigger twin invoking the real handler (loaded from the template's handler string)."""
    with Trigger(settings, template) as instance:
        yield instance


def failing_requests(ddb: Any, table: str, n: int) -> list[str]:
    return [put_pending_item(ddb, table, {"order": 4700 + i, **FAIL_ONCE_AT_CHARGE}) for i in range(n)]


def statuses(ddb: Any, table: str, ids: list[str]) -> list[str]:
    return [read_item(ddb, table, request_id)[attr.STATUS] for request_id in ids]


def step_attempts(ddb: Any, table: str, request_id: str) -> dict[str, int]:
    return {
        name: int(step["attempt"]) for name, step in read_item(ddb, table, request_id)[attr.STEPS].items()
    }


def test_a_group_of_failures_is_retried_and_succeeds_without_repeating_steps(
    ddb: Any, settings: Settings, trigger: Trigger
) -> None:
    ids = failing_requests(ddb, settings.table, 3)
    other = put_pending_item(ddb, settings.table, {"simulate": {"fail": "address unknown"}})
    trigger.poll_once()
    assert statuses(ddb, settings.table, [*ids, other]) == ["FAILED"] * 4
    for request_id in ids:
        assert step_attempts(ddb, settings.table, request_id) == {"validate": 1, "reserve": 1}

    pipeline = Pipeline.connect(settings)
    groups = {g.pattern: g for g in pipeline.failure_groups()}
    assert set(groups) == {"card declined for order <n>", "address unknown"}
    group = groups["card declined for order <n>"]
    assert group.count == 3 and sorted(group.request_ids) == sorted(ids)
    assert group.steps == {"charge": 3}
    batches: list[list[ActionResult]] = []
    results = pipeline.retry(pipeline.failed_ids(group.key), OPERATOR, on_batch=batches.append)
    assert [r.outcome for r in results] == [Outcome.REDRIVEN] * 3
    assert sum(len(b) for b in batches) == 3
    assert statuses(ddb, settings.table, ids) == ["PENDING"] * 3
    assert read_item(ddb, settings.table, ids[0])[attr.REDRIVEN_BY] == OPERATOR.name

    trigger.poll_once()

    assert statuses(ddb, settings.table, ids) == ["SUCCEEDED"] * 3
    assert statuses(ddb, settings.table, [other]) == ["FAILED"]  # not in the group: untouched
    for request_id in ids:
        stored = read_item(ddb, settings.table, request_id)
        assert stored[attr.ATTEMPTS] == 2
        # validate and reserve ran once, on attempt 1; the retry resumed at charge.
        assert step_attempts(ddb, settings.table, request_id) == {
            "validate": 1,
            "reserve": 1,
            "charge": 2,
            "notify": 2,
        }
    assert [g.pattern for g in pipeline.failure_groups()] == ["address unknown"]


def test_a_retry_of_a_request_no_longer_failed_changes_nothing(
    ddb: Any, settings: Settings, trigger: Trigger
) -> None:
    [request_id] = failing_requests(ddb, settings.table, 1)
    trigger.poll_once()
    pipeline = Pipeline.connect(settings)
    assert pipeline.retry([request_id], OPERATOR)[0].outcome is Outcome.REDRIVEN
    trigger.poll_once()
    succeeded = read_item(ddb, settings.table, request_id)
    assert succeeded[attr.STATUS] == "SUCCEEDED"

    [again] = pipeline.retry([request_id], OPERATOR)

    assert again.outcome is Outcome.NOT_FAILED and "SUCCEEDED" in again.detail
    assert trigger.poll_once() == 0  # no stream record to process either
    assert read_item(ddb, settings.table, request_id) == succeeded


def test_a_viewer_cannot_retry(ddb: Any, settings: Settings, trigger: Trigger) -> None:
    ids = failing_requests(ddb, settings.table, 2)
    trigger.poll_once()
    pipeline = Pipeline.connect(settings)
    with pytest.raises(PermissionDenied, match="viewer"):
        pipeline.retry(ids, VIEWER)
    with pytest.raises(PermissionDenied):
        pipeline.actions.redrive(ids[0], VIEWER)
    with pytest.raises(PermissionDenied):
        pipeline.reconcile(VIEWER)
    assert statuses(ddb, settings.table, ids) == ["FAILED"] * 2


def test_bulk_retries_run_in_bounded_batches(ddb: Any, settings: Settings, trigger: Trigger) -> None:
    ids = failing_requests(ddb, settings.table, REDRIVE_BATCH_SIZE + 2)
    trigger.poll_once()
    pipeline = Pipeline.connect(settings)
    sizes: list[int] = []
    results = pipeline.retry(ids, OPERATOR, on_batch=lambda batch: sizes.append(len(batch)))
    assert sizes == [REDRIVE_BATCH_SIZE, 2]
    assert [r.request_id for r in results] == ids
    assert {r.outcome for r in results} == {Outcome.REDRIVEN}


@pytest.fixture()
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name in ("STREAMDESK_STACK", "STREAMDESK_DYNAMODB_ENDPOINT", "STREAMDESK_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMDESK_SECRETS_FILE", str(settings.data_dir / "no-secrets.toml"))
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(settings.dynamodb_port))
    monkeypatch.setenv("STREAMDESK_TABLE", settings.table)
    monkeypatch.setenv("STREAMDESK_DATA_DIR", str(settings.data_dir))


@pytest.mark.usefixtures("cli_env")
def test_streamdesk_retry_error_group(
    ddb: Any, settings: Settings, trigger: Trigger, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = failing_requests(ddb, settings.table, 2)
    other = put_pending_item(ddb, settings.table, {"simulate": {"fail": "address unknown"}})
    trigger.poll_once()
    key = next(g.key for g in Pipeline.connect(settings).failure_groups() if g.pattern.startswith("card"))

    assert main(["retry", "--error-group", key, "--yes", "--as", "night shift"]) == 0

    out = capsys.readouterr().out
    assert "2 redriven" in out
    for request_id in ids:
        assert request_id in out
    assert statuses(ddb, settings.table, [*ids, other]) == ["PENDING", "PENDING", "FAILED"]
    assert read_item(ddb, settings.table, ids[0])[attr.REDRIVEN_BY] == "night shift"
    trigger.poll_once()
    assert statuses(ddb, settings.table, ids) == ["SUCCEEDED"] * 2

    # The group is empty now: the command says so and fails.
    assert main(["retry", "--error-group", key, "--yes"]) == 1
    assert f"no failed requests in error group {key}" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env")
def test_streamdesk_retry_without_yes_and_without_a_terminal_does_nothing(
    ddb: Any, settings: Settings, trigger: Trigger, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = failing_requests(ddb, settings.table, 2)
    trigger.poll_once()
    assert main(["retry", "--all-failed"]) == 1
    assert "add --yes" in capsys.readouterr().err
    assert statuses(ddb, settings.table, ids) == ["FAILED"] * 2


def test_a_failed_request_without_a_recorded_error_can_be_retried(
    ddb: Any, settings: Settings, trigger: Trigger
) -> None:
    now = int(time.time() * 1000)
    write_items(
        ddb, settings.table, [make_item(id="no-error", status="FAILED", created_at=now, finished_at=now)]
    )
    trigger.poll_once()  # its INSERT (status FAILED) is filtered out

    [result] = Pipeline.connect(settings).retry(["no-error"], OPERATOR)

    assert result.outcome is Outcome.REDRIVEN, result
    trigger.poll_once()
    stored = read_item(ddb, settings.table, "no-error")
    assert stored[attr.STATUS] == "SUCCEEDED"
    assert not stored.get(attr.LAST_ERROR)
