"""The Health page's slow-lane reading of a deployed stack, against moto's SQS, CloudWatch and
CloudFormation (no local engine exists for those), and of the local twin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from backend.computed.slow_lane_health import local_slow_lane
from backend.deployed.slow_lane import deployed_slow_lane
from backend.local.local_template import local_template
from backend.local.sqs_queues import ensure_queues
from backend.local.sqs_server import SqsServer
from backend.local.sqs_store import QueueStore
from backend.settings import Settings
from backend.slow_work_state import SlowWorkState
from backend.template import SLOW_WORK_DLQ_ID, SLOW_WORK_QUEUE_ID
from tests.slow_lane_fixtures import sqs_client

REGION = "us-east-1"


@pytest.fixture()
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        kwargs = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        yield {name: boto3.client(name, **kwargs) for name in ("sqs", "cloudwatch", "cloudformation")}


def _stack(cloudformation: Any, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Handle": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName="sd", TemplateBody=json.dumps(template))


def test_a_deployed_stack_shows_depths_and_the_oldest_message_age(aws: dict[str, Any]) -> None:
    sqs = aws["sqs"]
    queue = sqs.create_queue(QueueName="sd-SlowWorkQueue")["QueueUrl"]
    dead = sqs.create_queue(QueueName="sd-SlowWorkDeadLetterQueue")["QueueUrl"]
    _stack(aws["cloudformation"], {"SlowWorkQueueUrl": queue, "SlowWorkDeadLetterQueueUrl": dead})
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)
    sqs.send_message(QueueUrl=dead, MessageBody="gave up")
    aws["cloudwatch"].put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[{"MetricName": "ApproximateAgeOfOldestMessage", "Value": 42.0, "Unit": "Seconds",
                     "Timestamp": datetime.now(UTC),
                     "Dimensions": [{"Name": "QueueName", "Value": "sd-SlowWorkQueue"}]}],
    )  # fmt: skip

    lane = deployed_slow_lane("sd", aws["cloudformation"], sqs, aws["cloudwatch"])

    assert lane.errors == {}
    assert (lane.queue.visible, lane.queue.in_flight) == (2, 1)  # type: ignore[union-attr]
    assert lane.dead_letter is not None and lane.dead_letter.visible == 1
    assert lane.oldest_age_ms == 42_000
    assert lane.worker is None and lane.worker_running is None  # Lambda's poller has no state file


def test_a_stack_deployed_before_the_slow_lane_says_so(aws: dict[str, Any]) -> None:
    _stack(aws["cloudformation"], {"TableName": "t"})
    lane = deployed_slow_lane("sd", aws["cloudformation"], aws["sqs"], aws["cloudwatch"])
    assert lane.queue is None
    assert "no slow lane" in lane.errors["stack"]


def test_a_missing_permission_leaves_its_part_empty_and_says_why(aws: dict[str, Any]) -> None:
    gone = "https://sqs.us-east-1.amazonaws.com/123456789012/gone"
    _stack(aws["cloudformation"], {"SlowWorkQueueUrl": gone, "SlowWorkDeadLetterQueueUrl": gone + "-dlq"})
    lane = deployed_slow_lane("sd", aws["cloudformation"], aws["sqs"], aws["cloudwatch"])
    assert lane.queue is None and lane.dead_letter is None
    assert set(lane.errors) == {"slow-work queue", "dead-letter queue"}


def test_the_local_twin_shows_depths_the_oldest_message_and_the_event_source(tmp_path: Path) -> None:
    store = QueueStore(tmp_path / "data" / "sqs" / "queues.sqlite3")
    server = SqsServer(store, "127.0.0.1", 0, REGION).start()
    try:
        settings = Settings(
            table="health-table", data_dir=tmp_path / "data", sqs_port=server.port,
            STREAMDESK_API_KEY="test-key-0123456789",
        )  # fmt: skip
        ensure_queues(store, settings, local_template(settings))
        sqs = sqs_client(server.url)
        now = int(datetime.now(UTC).timestamp() * 1000)
        assert local_slow_lane(settings, sqs, now).worker_running is False  # never ran
        url = server.twin.queue_url(settings.local_queue_name(SLOW_WORK_QUEUE_ID))
        sqs.send_message(QueueUrl=url, MessageBody="waiting")
        state = SlowWorkState(
            pid=1, started_at=now, heartbeat_at=now, queue_url=url, pollers=10, batch_size=1
        )
        settings.slow_work_state_path.parent.mkdir(parents=True)
        settings.slow_work_state_path.write_text(json.dumps(state.to_json()), encoding="utf-8")

        lane = local_slow_lane(settings, sqs, now + 5_000)
        assert lane.errors == {}
        assert lane.queue is not None and lane.queue.visible == 1
        assert lane.dead_letter is not None and lane.dead_letter.visible == 0
        assert lane.oldest_age_ms is not None and lane.oldest_age_ms >= 4_000
        assert lane.worker == state and lane.worker_running is True
        assert settings.local_queue_name(SLOW_WORK_DLQ_ID) in store.queue_names()
    finally:
        server.stop()
