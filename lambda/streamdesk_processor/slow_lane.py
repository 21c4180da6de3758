"""The slow lane: which steps are long, the hand-off message, and the tokens that claim a handed-off request.

A long step does not run on the stream's ordered path, where it would hold its partition-key slot (and so
about 1/ParallelizationFactor of the requests behind it) for its whole duration. The stream processor
records a hand-off on the item under its claim and sends a :class:`HandOff` message to the slow-work
queue; the slow-work worker (``streamdesk_processor.slow_worker``) claims it and runs the remaining steps
with the same step protocol. The whole design: docs/slow-lane.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from streamdesk_processor.simulate import Simulation
from streamdesk_processor.steps import Step, StepContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

HANDOFF_PREFIX: Final = "slow:"
DELIVERY_SEPARATOR: Final = "/"
# Backoff between a transient failure in the slow lane and its redelivery: 10 s, doubling, at most 80 s,
# never longer than the queue's own visibility timeout. Kept short on purpose: a request waiting out its
# backoff is PROCESSING with no write, and it must come back (plus at most a function timeout) before the
# dashboard's stuck threshold (300 s by default) would call it stuck and reconcile would take it over.
RETRY_BACKOFF_FIRST_S: Final = 10
RETRY_BACKOFF_MAX_S: Final = 80


def is_long(step: Step, ctx: StepContext, simulation: Simulation, threshold_ms: int) -> bool:
    """True when ``step`` should run in the slow lane: declared long, or expected to take at least
    ``threshold_ms`` (its own estimate, or the request's simulated delay for the demo logic: the
    simulation spends that delay over the steps this attempt runs, so the attempt as a whole is long)."""
    if step.long:
        return True
    if step.estimate_ms is not None and step.estimate_ms(ctx) >= threshold_ms:
        return True
    return simulation.delay_ms > 0 and simulation.delay_ms >= threshold_ms


def retry_backoff_seconds(receive_count: int, visibility_timeout_s: int) -> int:
    """How long a message waits before its next delivery after the ``receive_count``-th one failed."""
    backoff = RETRY_BACKOFF_FIRST_S * 2 ** max(receive_count - 1, 0)
    return max(0, min(backoff, RETRY_BACKOFF_MAX_S, visibility_timeout_s))


def handoff_token(event_id: str) -> str:
    """The claim a hand-off by stream record ``event_id`` leaves on the item (deterministic, so that the
    record's redelivery recognises its own hand-off and re-sends the message)."""
    return f"{HANDOFF_PREFIX}{event_id}"


def delivery_token(token: str, receive_count: int, delivery: str) -> str:
    """The claim of one worker delivery of hand-off ``token``: it begins with the token, so a later
    delivery may take over once the lease has passed, and nothing else can."""
    return f"{token}{DELIVERY_SEPARATOR}{receive_count}.{delivery}"


@dataclass(frozen=True)
class HandOff:
    """The slow-work message: which request, under which hand-off token, on which index shard."""

    request_id: str
    token: str
    shard: str
    step: str

    def body(self) -> str:
        return json.dumps(
            {"requestId": self.request_id, "token": self.token, "shard": self.shard, "step": self.step},
            sort_keys=True,
        )

    @classmethod
    def from_body(cls, body: str) -> HandOff:
        """The message parsed; ValueError for a body that is not a hand-off."""
        data: Any = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("a hand-off message is a JSON object")
        fields = {name: data.get(name) for name in ("requestId", "token", "shard", "step")}
        if not all(isinstance(value, str) and value for value in fields.values()):
            raise ValueError(f"a hand-off message needs requestId, token, shard and step: {body[:200]!r}")
        token = str(fields["token"])
        if not token.startswith(HANDOFF_PREFIX):
            raise ValueError(f"not a hand-off token: {token!r}")
        return cls(str(fields["requestId"]), token, str(fields["shard"]), str(fields["step"]))


class SlowWorkQueue:
    """Sends hand-off messages to the slow-work queue (the injected SQS client; on AWS the queue URL is
    the template's ``!Ref SlowWorkQueue``, locally the SQS twin's)."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self.url = queue_url

    def send(self, handoff: HandOff) -> None:
        self._client.send_message(QueueUrl=self.url, MessageBody=handoff.body())

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        """Make a delivered message visible again in ``seconds`` (its backoff) instead of after the
        queue's whole visibility timeout."""
        self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )
