"""The Health page's view of the local twin (AppTest of the real dashboard): the supervisor's restarts (its
file written by the supervisor's own RestartPolicy), the trigger's concurrency and per-shard progress while a
batch is in flight, and a table outage the real trigger is waiting out (DynamoDB Local killed mid-batch).
The trigger's state file is always the real Trigger's own ``state()``."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backend.computed.health import load_health
from backend.local.checkpoint import atomic_write_json
from backend.local.dynamodb_local import client
from backend.local.esm_config import load_esm_config
from backend.local.local_template import local_template
from backend.local.restarts import RestartPolicy
from backend.local.table import ensure_table
from backend.local.trigger import Trigger, processor_concurrency
from backend.settings import Settings
from backend.stack_restarts import RESTARTS_FILE
from backend.store.reader import RequestStore
from backend.template import LocalValues, Template
from tests.gui.conftest import RunPage, clear_streamlit_caches, metrics, texts
from tests.integration.test_table_outage import Database
from tests.processor_events import put_pending_item

PAGE = "pages/health.py"
COMPONENTS = ["dynamodb", "api", "trigger", "dashboard"]
WAITING = "the trigger is waiting for the table; no retries are being spent"


def frame_with(app: Any, column: str) -> list[dict[str, Any]]:
    frame = next(d.value for d in app.dataframe if column in d.value.columns)
    rows: list[dict[str, Any]] = frame.to_dict("records")
    return rows


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def write_state(trigger: Trigger, settings: Settings) -> None:
    """The trigger's state file as it writes it (the trigger itself writes only between batches)."""
    atomic_write_json(settings.trigger_state_path, trigger.state(), durable=False)


# ------------------------------------------------------------------------------------ restarts
def test_restarts_per_component_and_a_restart_in_progress(run_page: RunPage, app_env: Settings) -> None:
    policy = RestartPolicy(app_env.data_dir / RESTARTS_FILE, COMPONENTS)
    for pid, name in enumerate(COMPONENTS, start=100):
        policy.started(name, pid)
    policy.died("trigger", -signal.SIGKILL)
    policy.restarted("trigger", 4242)
    policy.died("api", 1)  # waiting for its backoff now

    app = run_page(PAGE)

    rows = {r["component"]: r for r in frame_with(app, "last exit")}
    assert sorted(rows) == sorted(COMPONENTS)
    assert (rows["trigger"]["state"], rows["trigger"]["restarts"], rows["trigger"]["pid"]) == (
        "running", 1, "4242"
    )  # fmt: skip
    assert rows["trigger"]["last exit"] == "killed by SIGKILL"
    assert rows["trigger"]["exited"].endswith(" ago") and rows["trigger"]["restarted"].endswith(" ago")
    assert (rows["api"]["state"], rows["api"]["restarts"], rows["api"]["pid"]) == ("restarting", 0, "—")
    assert rows["api"]["last exit"] == "exited with code 1"
    assert rows["api"]["deaths in the last minute"] == 1
    assert (rows["dynamodb"]["restarts"], rows["dynamodb"]["last exit"], rows["dynamodb"]["pid"]) == (
        0, "—", "100"
    )  # fmt: skip
    shown = texts(app)
    assert "api is being restarted (last exit: exited with code 1, " in shown
    restarting = [w.value for w in app.warning if "being restarted" in w.value]
    assert len(restarting) == 1  # the trigger runs again: only the api is being restarted
    assert not [e for e in app.error if "supervisor" in e.value]


def test_a_crash_loop_says_why_the_supervisor_stopped_the_stack(run_page: RunPage, app_env: Settings) -> None:
    policy = RestartPolicy(app_env.data_dir / RESTARTS_FILE, COMPONENTS, give_up_after=2)
    for name in COMPONENTS:
        policy.started(name, 1)
    policy.died("dynamodb", -signal.SIGKILL)
    policy.restarted("dynamodb", 2)
    verdict = policy.died("dynamodb", -signal.SIGKILL)
    assert not verdict.restart
    policy.stop()

    app = run_page(PAGE)

    [error] = [e.value for e in app.error if "supervisor" in e.value]
    assert error == f"The supervisor stopped the stack because {verdict.reason}."
    assert "dynamodb died 2 times within 60 s (last: killed by SIGKILL)" in error
    rows = {r["component"]: r["state"] for r in frame_with(app, "last exit")}
    assert rows == {"dynamodb": "gave up", "api": "stopped", "trigger": "stopped", "dashboard": "stopped"}


def test_without_a_supervisor_and_with_a_broken_restart_file(run_page: RunPage, app_env: Settings) -> None:
    app = run_page(PAGE)
    assert "the stack here was not started by `make up`'s supervisor" in texts(app)
    assert not [d for d in app.dataframe if "last exit" in d.value.columns]

    path = app_env.data_dir / RESTARTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"startedAt": 1, "updatedAt": 2, "components": {"api": {"state": "asleep"}}}')
    clear_streamlit_caches()
    app.run()
    assert not app.exception
    [warning] = [w.value for w in app.warning if "restarts" in w.value]
    assert warning.startswith("Cannot read the supervisor's restarts: not the supervisor's restart file")
    assert "Pipeline health" in texts(app)  # the rest of the page is still there
    assert path.read_text().startswith('{"startedAt": 1')  # left alone for a person to look at


def test_a_deployed_stack_shows_no_local_restarts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The local supervisor's file is there, but the dashboard watches a deployed stack: not its processes.
    RestartPolicy(settings.data_dir / RESTARTS_FILE, COMPONENTS).started("api", 1)
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no network: the credentials are missing
    deployed = settings.model_copy(update={"stack": "streamdesk-nowhere"})
    local = load_health(settings, RequestStore(settings), int(time.time() * 1000))
    assert local.restarts is not None

    report = load_health(deployed, RequestStore(settings), int(time.time() * 1000))

    assert report.deployed_mode and report.restarts is None


# ------------------------------------------------------------------------------------ concurrency
def test_concurrency_and_shard_progress_while_batches_are_in_flight(
    run_page: RunPage, ddb: Any, app_env: Settings, template: Template
) -> None:
    for n in range(6):
        put_pending_item(ddb, app_env.table, {"order": n})
    release = threading.Event()

    def held(event: dict[str, Any], context: Any) -> None:
        release.wait(60)  # the batch stays in flight until the page has been looked at

    esm = replace(load_esm_config(local_template(app_env, template)), parallelization_factor=2)
    with Trigger(app_env, template, invoke=held, esm=esm) as trigger:
        poll = threading.Thread(target=trigger.poll_once, daemon=True)
        poll.start()
        try:
            wait_for(lambda: trigger.state()["inFlightBatches"] > 0, "a batch in flight")
            write_state(trigger, app_env)
            app = run_page(PAGE)
        finally:
            release.set()
            poll.join(60)
    assert not poll.is_alive()

    numbers = metrics(app)
    assert numbers["Batches at once per shard"] == "2"
    assert numbers["Batch size"] == str(esm.batch_size)
    concurrency = processor_concurrency(esm)  # the function's CONCURRENCY variable in the template
    assert numbers["Records at once per invocation"] == (str(concurrency) if concurrency else "—")
    in_flight = int(numbers["Batches in flight"])
    assert 1 <= in_flight <= 2
    [shard] = frame_with(app, "not checkpointed")
    assert shard["in flight"] == in_flight
    assert shard["not checkpointed"] == 6  # read, none done: the checkpoint has not moved
    assert shard["checkpoint"] == "—" and shard["last read"] != "—"
    assert not shard["closed"]
    assert "If it grows while the checkpoint stays put" in texts(app)

    clear_streamlit_caches()  # poll_once wrote the state once every batch had ended
    app.run()
    assert metrics(app)["Batches in flight"] == "0"
    [shard] = frame_with(app, "not checkpointed")
    assert (shard["in flight"], shard["not checkpointed"], shard["buffered"], shard["queued"]) == (0, 0, 0, 0)
    assert shard["checkpoint"] == shard["last read"] != "—"


# ------------------------------------------------------------------------------------ table outage
@pytest.fixture()
def database(tmp_path: Path) -> Any:
    db = Database(tmp_path / "db")
    try:
        yield db
    finally:
        db.stop()


def test_a_table_outage_the_trigger_waits_out(
    run_page: RunPage, app_env: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = "streamdesk-outage-page"
    settings = replace_port(app_env, database.port, table)
    template = local_template(settings, Template.load(local=LocalValues(refs={"RequestsTable": table})))
    assert database.instance is not None
    ddb = client(database.instance.endpoint)
    ensure_table(ddb, table, template)
    put_pending_item(ddb, table, {"order": 1})
    monkeypatch.setenv("STREAMDESK_DYNAMODB_PORT", str(database.port))
    monkeypatch.setenv("STREAMDESK_TABLE", table)
    calls: list[int] = []

    def table_goes_away_mid_batch(event: dict[str, Any], context: Any) -> None:
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            database.kill()  # SIGKILL, while the batch is being processed
            raise RuntimeError("the table went away")

    esm = replace(load_esm_config(template), maximum_retry_attempts=0, parallelization_factor=1)
    with Trigger(settings, template, invoke=table_goes_away_mid_batch, esm=esm) as trigger:
        poll = threading.Thread(target=trigger.poll_once, daemon=True)
        poll.start()
        try:
            wait_for(lambda: trigger.state()["tableUnreachableSince"] is not None, "the trigger to wait")
            write_state(trigger, settings)
            app = run_page(PAGE)
            waiting = [w.value for w in app.warning if WAITING in w.value]
            numbers = metrics(app)
        finally:
            if database.instance is None:
                database.start()
            poll.join(90)
    assert not poll.is_alive()

    assert len(waiting) == 1 and waiting[0].startswith("The table does not answer (since ")
    assert numbers["Outages waited out"] == "1"
    assert numbers["Records given up on"] == "0"  # no retry was spent: maximum_retry_attempts is 0

    clear_streamlit_caches()  # the trigger retried once the table answered, and wrote its state
    app.run()
    assert calls == [1, 1]
    assert not [w for w in app.warning if WAITING in w.value]
    numbers = metrics(app)
    assert numbers["Outages waited out"] == "1"
    assert numbers["Time waited for the table"] not in ("—", "0 ms")
    assert (numbers["Records given up on"], numbers["Records parked by an outage"]) == ("0", "0")
    assert numbers["Batches handed back after an outage"] == "0"
    assert not settings.failure_destination_path.exists()


def replace_port(settings: Settings, port: int, table: str) -> Settings:
    return settings.model_copy(update={"dynamodb_port": port, "table": table})
