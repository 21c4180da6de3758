"""The slow lane's health for the Health page: the slow-work queue's depth and oldest message, its
dead-letter queue's depth, and (locally) the event source twin's state.

The queues are read with boto3 SQS (``GetQueueAttributes``) on AWS and on the local SQS twin alike. The
oldest message's age is not an SQS attribute: on AWS it is CloudWatch's ``ApproximateAgeOfOldestMessage``
(:mod:`backend.deployed.slow_lane`), locally the twin's own database says it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from backend.local.local_template import queue_url
from backend.local.sqs_store import QueueStore
from backend.settings import Settings
from backend.slow_work_state import SlowWorkState
from backend.template import SLOW_WORK_DLQ_ID, SLOW_WORK_QUEUE_ID


@dataclass(frozen=True)
class QueueReading:
    visible: int  # waiting to be received
    in_flight: int  # received, not yet deleted (being worked on, or waiting out a visibility timeout)


@dataclass(frozen=True)
class SlowLaneHealth:
    queue: QueueReading | None = None
    dead_letter: QueueReading | None = None
    oldest_age_ms: int | None = None  # the oldest message still in the slow-work queue
    worker: SlowWorkState | None = None  # the local event source twin's state (None: never ran / AWS)
    worker_running: bool | None = None  # None: not known here (a deployed stack)
    errors: dict[str, str] = field(default_factory=dict)


def queue_reading(sqs: Any, url: str) -> QueueReading:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return QueueReading(
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def read_queues(
    sqs: Any, url: str, dead_letter_url: str, errors: dict[str, str]
) -> tuple[QueueReading | None, QueueReading | None]:
    """(slow-work queue, dead-letter queue) readings; what cannot be read is said in ``errors``."""
    readings: list[QueueReading | None] = []
    for name, address in (("slow-work queue", url), ("dead-letter queue", dead_letter_url)):
        try:
            readings.append(queue_reading(sqs, address))
        except Exception as error:  # the twin down, a missing permission: said on the page
            errors[name] = f"{type(error).__name__}: {error}"
            readings.append(None)
    return readings[0], readings[1]


def local_slow_lane(settings: Settings, sqs: Any, now_ms: int) -> SlowLaneHealth:
    """The local stack's slow lane: the SQS twin's queues and the event source twin's state file."""
    errors: dict[str, str] = {}
    queue, dead_letter = read_queues(
        sqs, queue_url(settings, SLOW_WORK_QUEUE_ID), queue_url(settings, SLOW_WORK_DLQ_ID), errors
    )
    oldest: int | None = None
    if settings.sqs_database_path.exists():
        store = QueueStore(settings.sqs_database_path)
        try:
            sent = store.depth(settings.local_queue_name(SLOW_WORK_QUEUE_ID)).oldest_sent_ms
            oldest = now_ms - sent if sent is not None else None
        except Exception as error:
            errors["oldest message"] = f"{type(error).__name__}: {error}"
        finally:
            store.close()
    worker: SlowWorkState | None = None
    try:
        worker = SlowWorkState.from_json(
            json.loads(settings.slow_work_state_path.read_text(encoding="utf-8"))
        )
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        errors["slow-work event source"] = f"unreadable state file: {error}"
    return SlowLaneHealth(
        queue=queue,
        dead_letter=dead_letter,
        oldest_age_ms=oldest,
        worker=worker,
        worker_running=worker.is_alive(now_ms) if worker is not None else False,
        errors=errors,
    )
