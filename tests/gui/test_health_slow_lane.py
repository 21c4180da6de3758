"""The Health page's slow lane (AppTest of the real dashboard): the queue's depth, the oldest message, the
dead-letter queue and the local event source, read from a running SQS twin; and the twin down."""

from __future__ import annotations

import json
import time

from backend.local.local_template import local_template, queue_url
from backend.local.sqs_queues import ensure_queues
from backend.local.sqs_server import SqsServer
from backend.local.sqs_store import QueueStore
from backend.settings import Settings
from backend.slow_work_state import SlowWorkState
from backend.template import SLOW_WORK_DLQ_ID, SLOW_WORK_QUEUE_ID
from tests.gui.conftest import RunPage, metrics, texts
from tests.slow_lane_fixtures import sqs_client

PAGE = "pages/health.py"


def test_depths_the_oldest_message_and_a_running_event_source(run_page: RunPage, app_env: Settings) -> None:
    store = QueueStore(app_env.sqs_database_path)
    ensure_queues(store, app_env, local_template(app_env))
    server = SqsServer(store, "127.0.0.1", app_env.sqs_port, app_env.region).start()
    try:
        sqs = sqs_client(server.url)
        for body in ("one", "two"):
            sqs.send_message(QueueUrl=queue_url(app_env, SLOW_WORK_QUEUE_ID), MessageBody=body)
        sqs.receive_message(QueueUrl=queue_url(app_env, SLOW_WORK_QUEUE_ID))
        sqs.send_message(QueueUrl=queue_url(app_env, SLOW_WORK_DLQ_ID), MessageBody="gave up")
        now = int(time.time() * 1000)
        state = SlowWorkState(
            pid=4242, started_at=now, heartbeat_at=now, queue_url="q", pollers=10, batch_size=1
        )
        app_env.slow_work_state_path.parent.mkdir(parents=True, exist_ok=True)
        app_env.slow_work_state_path.write_text(json.dumps(state.to_json()), encoding="utf-8")

        app = run_page(PAGE)
    finally:
        server.stop()
        store.close()
    shown = metrics(app)
    assert (shown["Waiting"], shown["In flight"], shown["Dead-letter queue"]) == ("1", "1", "1")
    assert shown["Oldest message"] != "–"
    page = texts(app)
    assert "Slow-work event source running · pid 4242" in page
    assert "1 hand-off message(s) in the dead-letter queue" in page


def test_the_twin_down_and_an_event_source_that_never_ran(run_page: RunPage, app_env: Settings) -> None:
    app = run_page(PAGE)
    assert metrics(app)["Waiting"] == "–"
    page = texts(app)
    assert "The slow-work event source has never run here" in page
    assert "slow-work queue:" in page  # why the depth is missing, said
