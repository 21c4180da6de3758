"""``streamdesk rollups rebuild`` against DynamoDB Local: a range whose rollups lost a batch is reported
(what differs, which buckets are missing, what --apply would add), --apply adds exactly that, and bad input
or a table that is not there is one line on stderr."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from streamdesk_processor import item
from streamdesk_processor.item import Status

from backend.cli import main
from backend.rollups.reader import RollupReader
from backend.settings import Settings
from tests.rollups_workload import create_rollups_table, make_consumer, run_workload


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name in ("STREAMDESK_STACK", "STREAMDESK_DYNAMODB_ENDPOINT", "STREAMDESK_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMDESK_SECRETS_FILE", str(settings.data_dir / "no-secrets.toml"))
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(settings.dynamodb_port))
    monkeypatch.setenv("STREAMDESK_TABLE", settings.table)
    monkeypatch.setenv("STREAMDESK_DATA_DIR", str(settings.data_dir))


def _status(ddb: Any, table: str, request_id: str) -> str:
    answer = ddb.get_item(TableName=table, Key={item.ID: {"S": request_id}}, ConsistentRead=True)
    return str(answer["Item"][item.STATUS]["S"])


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat()


def test_rebuild_reports_a_lost_batch_and_apply_adds_exactly_it(
    ddb: Any, dynamodb_endpoint: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    create_rollups_table(ddb, settings.rollups_table)
    w = run_workload(ddb, dynamodb_endpoint, settings.table, requests=30, redrives=0, cancels=1, resolves=1)
    consumer = make_consumer(ddb, settings.rollups_table, shards=settings.rollups_shards)
    lost = w.records[:20]  # a batch the mapping gave up on: the first requests' acceptances among them
    assert consumer.handle({"Records": w.records[20:]})[0] == {"batchItemFailures": []}
    since, until = iso(w.since_ms), iso(w.until_ms)
    lost_inserts = sum(1 for record in lost if record["eventName"] == "INSERT")

    assert main(["rollups", "rebuild", "--since", since, "--until", until]) == 0
    out = capsys.readouterr().out
    assert f"read {len(w.request_ids)} request item(s)" in out
    assert "below the recount (missing" in out and "missing bucket(s): " in out
    assert "--apply would add, to write shard 0 of " in out
    assert f"{lost_inserts} accepted (minute)" in out and f"{lost_inserts} accepted (hour)" in out

    # The workload ended a moment ago: --apply refuses a range that recent unless told the consumer is done.
    assert main(["rollups", "rebuild", "--since", since, "--until", until, "--apply"]) == 2
    assert "--allow-recent" in capsys.readouterr().err
    assert main(["rollups", "rebuild", "--since", since, "--until", until, "--apply", "--allow-recent"]) == 0
    out = capsys.readouterr().out
    assert "added, to write shard 0 of " in out and f"{lost_inserts} accepted (minute)" in out

    assert main(["rollups", "rebuild", "--since", since, "--until", until]) == 0
    out = capsys.readouterr().out
    assert "no figure differs: the rollups hold what the items tell" in out
    failed_now = sum(1 for i in w.request_ids if _status(ddb, settings.table, i) == Status.FAILED)
    gauge = RollupReader(ddb, settings.rollups_table, settings.rollups_shards).open_failures()
    verdict = "equal" if gauge == failed_now else f"they differ by {gauge - failed_now:+d}"
    assert f"open failures now: the rollups' gauge {gauge}, FAILED items {failed_now} ({verdict})" in out
    assert failed_now > 0  # the workload leaves open failures: the line compares something


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday-ish"], "'yesterday-ish' is not a time: use an ISO time"),
        (["--since", "1h", "--until", "2h ago"], "--until ("),
        (["--since=-1h", "--until=-2h"], "--until ("),
        (["--since", "2h", "--apply"], "--apply needs an explicit --until"),
        (["--since", "2026-12-04T10:00", "--until", "2026-12-04T09:00"], "is before --since"),
    ],
)
def test_bad_input_is_one_line_on_stderr(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollups", "rebuild", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("streamdesk rollups rebuild: ") and message in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_a_rollups_table_that_is_not_there_is_one_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollups", "rebuild", "--since", "1h"]) == 1  # no rollups table was created
    err = capsys.readouterr().err
    assert err.startswith("streamdesk rollups: table ") and "does not exist" in err
    assert len(err.strip().splitlines()) == 1


def test_an_unreachable_table_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", "9")  # nothing listens there
    assert main(["rollups", "rebuild", "--since", "15m"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("streamdesk rollups: DynamoDB at ") and "unreachable" in err
    assert len(err.strip().splitlines()) == 1
