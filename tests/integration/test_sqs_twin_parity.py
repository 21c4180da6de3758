"""The SQS twin answers the calls the project makes as SQS does: one scenario, run through boto3 against
moto's SQS and against the twin, gives the same transcript (ids, receipt handles and timestamps aside).
Also: a message the twin acknowledged survives the twin's process being killed (its queue is on disk)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from backend.local.dynamodb_local import free_port
from backend.local.sqs_server import SqsServer
from backend.local.sqs_store import QueueSettings, QueueStore
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY
from backend.template import PROJECT_ROOT
from tests.slow_lane_fixtures import sqs_client


def scenario(sqs: Any) -> list[Any]:
    """Every call the slow lane makes, with what a caller can rely on from each answer."""
    out: list[Any] = []
    dlq_url = sqs.create_queue(QueueName="parity-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    out.append(dlq_arn.rsplit(":", 1)[-1])
    url = sqs.create_queue(
        QueueName="parity",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    out.append(url.rsplit("/", 1)[-1])
    out.append(sqs.get_queue_url(QueueName="parity")["QueueUrl"] == url)

    sent = sqs.send_message(QueueUrl=url, MessageBody='{"requestId": "r1"}')
    out.append(sent["MD5OfMessageBody"])
    sqs.send_message(QueueUrl=url, MessageBody="second")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    out.append({key: attributes[key] for key in ("ApproximateNumberOfMessages", "VisibilityTimeout")})
    policy = json.loads(attributes["RedrivePolicy"])
    out.append((policy["maxReceiveCount"], policy["deadLetterTargetArn"] == dlq_arn))

    received = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]
    )["Messages"]
    out.append(sorted(m["Body"] for m in received))
    first = next(m for m in received if m["MessageId"] == sent["MessageId"])
    out.append((first["MD5OfBody"], first["Attributes"]["ApproximateReceiveCount"]))
    out.append(sorted(k for k in first["Attributes"] if k != "AWSTraceHeader"))
    out.append(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []))  # both in flight
    depth = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    out.append(depth)

    # Back at once (a failed message), then received again: its receive count grows.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["ApproximateReceiveCount"])
    (message,) = again["Messages"]
    out.append((message["Body"], message["Attributes"]))

    # The other one is done: deleted in a batch.
    other = next(m for m in received if m["MessageId"] != sent["MessageId"])
    batch = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": "a", "ReceiptHandle": other["ReceiptHandle"]}]
    )
    out.append(([e["Id"] for e in batch["Successful"]], batch.get("Failed", [])))

    # Received maxReceiveCount times: the next receive moves it to the dead-letter queue.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    out.append(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []))
    moved = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1)["Messages"]
    out.append([m["Body"] for m in moved])
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=moved[0]["ReceiptHandle"])
    counts = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    out.append((counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]))

    for call in (
        lambda: sqs.get_queue_url(QueueName="no-such-queue"),
        lambda: sqs.send_message(QueueUrl=url.rsplit("/", 1)[0] + "/no-such-queue", MessageBody="x"),
    ):
        out.append(_error_code(call))
    return out


def _error_code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return str(raised.value.response["Error"]["Code"])


def test_the_twin_answers_as_sqs_does(tmp_path: Path) -> None:
    with mock_aws():
        moto = boto3.client(
            "sqs", region_name=LOCAL_REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        expected = scenario(moto)
    store = QueueStore(tmp_path / "queues.sqlite3")
    server = SqsServer(store, "127.0.0.1", 0, LOCAL_REGION).start()
    try:
        actual = scenario(sqs_client(server.url))
    finally:
        server.stop()
    assert actual == expected


def test_the_twin_keeps_its_files_private(tmp_path: Path) -> None:
    path = tmp_path / "sqs" / "queues.sqlite3"
    QueueStore(path).create_queue("q1", QueueSettings())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


def test_an_acknowledged_message_survives_kill_9_of_the_twin(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "STREAMDESK_DATA_DIR": str(tmp_path / "data"),
        "STREAMDESK_SQS_PORT": str(port),
        "STREAMDESK_TABLE": "parity-table",
        "STREAMDESK_API_KEY": "test-key-0123456789",
    }

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "sqs"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL
        )
        client = boto3.client(
            "sqs", endpoint_url=f"http://127.0.0.1:{port}", region_name=LOCAL_REGION,
            aws_access_key_id=LOCAL_ACCESS_KEY, aws_secret_access_key=LOCAL_SECRET_KEY,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_queues()
                return process
            except Exception:
                assert time.monotonic() < deadline, "the SQS twin did not start"
                time.sleep(0.2)

    twin = start()
    sqs = sqs_client(f"http://127.0.0.1:{port}")
    url = sqs.get_queue_url(QueueName="parity-table-SlowWorkQueue")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="kept")
    twin.send_signal(signal.SIGKILL)
    twin.wait(10)
    twin = start()
    try:
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
        assert [m["Body"] for m in messages] == ["kept"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        # The template's settings (VisibilityTimeout, the redrive policy), not restated anywhere.
        assert attributes["VisibilityTimeout"] == "360"
        assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5
    finally:
        twin.terminate()
        twin.wait(10)
