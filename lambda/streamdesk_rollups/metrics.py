"""Key figures as CloudWatch metrics in the embedded metric format (Powertools Metrics).

Published from what a batch newly counted (never from duplicates), so CloudWatch's sums agree with the
rollups: one count metric per transition, and the latencies as values (CloudWatch computes p99 from them).
The template's alarms read ``Failed``/``Succeeded`` (failure rate) and ``EndToEndMs`` (p99).
"""

from __future__ import annotations

import os
from typing import Final

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from streamdesk_rollups.consumer import ApplyReport
from streamdesk_rollups.schema import Stage, Transition

NAMESPACE: Final = "Streamdesk"
DEFAULT_SERVICE: Final = "streamdesk"
# The "service" dimension: the stack's name (the template sets it), so that two stacks' alarms never
# read each other's figures.
SERVICE_VARIABLE: Final = "METRICS_SERVICE"
LATENCY_METRICS: Final = {
    Stage.QUEUE_WAIT: "QueueWaitMs",
    Stage.PROCESSING: "ProcessingMs",
    Stage.END_TO_END: "EndToEndMs",
}
OPEN_FAILURES_DELTA: Final = "OpenFailuresDelta"

metrics = Metrics(namespace=NAMESPACE, service=os.environ.get(SERVICE_VARIABLE) or DEFAULT_SERVICE)


def metric_name(transition: Transition) -> str:
    return transition.value.capitalize()


def publish(report: ApplyReport, sink: Metrics = metrics) -> None:
    """Add the report's figures to ``sink`` (flushed by ``log_metrics`` at the end of the invocation)."""
    counts = dict.fromkeys(Transition, 0)
    gauge = 0
    for change in report.applied:
        for transition, _ in change.transitions:
            counts[transition] += 1
        for stage, value in change.latencies:
            sink.add_metric(name=LATENCY_METRICS[stage], unit=MetricUnit.Milliseconds, value=value)
        gauge += change.open_failures
    for transition, count in counts.items():
        sink.add_metric(name=metric_name(transition), unit=MetricUnit.Count, value=count)
    sink.add_metric(name=OPEN_FAILURES_DELTA, unit=MetricUnit.Count, value=gauge)
