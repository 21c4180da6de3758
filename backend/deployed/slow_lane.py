"""The slow lane of a deployed stack: its queues (outputs ``SlowWorkQueueUrl``,
``SlowWorkDeadLetterQueueUrl``) read with boto3 SQS, and the oldest message's age from CloudWatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backend.computed.slow_lane_health import SlowLaneHealth, read_queues

QUEUE_OUTPUT = "SlowWorkQueueUrl"
DEAD_LETTER_OUTPUT = "SlowWorkDeadLetterQueueUrl"


def slow_lane_urls(stack_name: str, cloudformation: Any) -> tuple[str, str] | None:
    """The two queue URLs of the stack; None for a stack deployed before the slow lane."""
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in (stacks[0].get("Outputs") or [])}
    if not outputs.get(QUEUE_OUTPUT) or not outputs.get(DEAD_LETTER_OUTPUT):
        return None
    return outputs[QUEUE_OUTPUT], outputs[DEAD_LETTER_OUTPUT]


def oldest_message_age_ms(queue_url: str, cloudwatch: Any, now: datetime | None = None) -> int | None:
    """CloudWatch's ApproximateAgeOfOldestMessage (the latest minute's maximum), None without data."""
    now = now or datetime.now(UTC)
    answer = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue_url.rstrip("/").rsplit("/", 1)[-1]}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),  # the minute running now too
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(answer.get("Datapoints") or [], key=lambda point: point["Timestamp"])
    return int(points[-1]["Maximum"] * 1000) if points else None


def deployed_slow_lane(stack_name: str, cloudformation: Any, sqs: Any, cloudwatch: Any) -> SlowLaneHealth:
    errors: dict[str, str] = {}
    try:
        urls = slow_lane_urls(stack_name, cloudformation)
    except Exception as error:
        return SlowLaneHealth(errors={"stack": f"{type(error).__name__}: {error}"})
    if urls is None:
        return SlowLaneHealth(errors={"stack": f"{stack_name} has no slow lane (deployed before it)"})
    queue, dead_letter = read_queues(sqs, urls[0], urls[1], errors)
    oldest = None
    try:
        oldest = oldest_message_age_ms(urls[0], cloudwatch)
    except Exception as error:
        errors["oldest message"] = f"{type(error).__name__}: {error}"
    return SlowLaneHealth(queue=queue, dead_letter=dead_letter, oldest_age_ms=oldest, errors=errors)
