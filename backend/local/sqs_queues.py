"""The slow lane's queues and its SQS event source mapping, read from ``infra/template.yaml``.

The SQS twin creates the queues with the template's attributes (visibility timeout, retention, the redrive
policy to the dead-letter queue) and the event source twin polls with the mapping's settings (batch size,
partial batch responses, maximum concurrency): nothing here restates a value the template holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from backend.local.esm_config import REPORT_BATCH_ITEM_FAILURES, FunctionConfig, load_function_config
from backend.local.local_template import LOCAL_QUEUES
from backend.local.sqs_store import QueueSettings, QueueStore, settings_from_attributes
from backend.settings import Settings
from backend.template import (
    SLOW_WORK_EVENT_ID,
    SLOW_WORK_FUNCTION_ID,
    TEMPLATE_PATH,
    Template,
    TemplateError,
)

# AWS's values for settings an SQS event source mapping leaves out.
DEFAULT_SQS_BATCH_SIZE: Final = 10
DEFAULT_MAXIMUM_CONCURRENCY: Final = 1000  # no ScalingConfig: Lambda scales up to the account's limit
LOCAL_CONCURRENCY_CAP: Final = 16  # one process here: more pollers than this only share the cores


@dataclass(frozen=True)
class SqsEsmConfig:
    """An ``SQS`` event of a SAM function: the queue (logical id) and how it is polled."""

    function: FunctionConfig
    queue_id: str
    batch_size: int = DEFAULT_SQS_BATCH_SIZE
    maximum_batching_window_seconds: float = 0.0
    function_response_types: tuple[str, ...] = ()
    maximum_concurrency: int = DEFAULT_MAXIMUM_CONCURRENCY
    enabled: bool = True

    @property
    def report_batch_item_failures(self) -> bool:
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types

    @property
    def local_pollers(self) -> int:
        """Concurrent batches the twin runs: the mapping's MaximumConcurrency, capped for one process."""
        return max(1, min(self.maximum_concurrency, LOCAL_CONCURRENCY_CAP))


def queue_settings(template: Template, logical_id: str) -> QueueSettings:
    """A queue's attributes as the template declares them (``!GetAtt <dlq>.Arn`` names its queue)."""
    props: dict[str, Any] = template.properties(logical_id)
    redrive = props.get("RedrivePolicy")
    attributes: dict[str, Any] = {
        key: props[key] for key in ("VisibilityTimeout", "MessageRetentionPeriod") if key in props
    }
    if redrive:
        attributes["RedrivePolicy"] = redrive
    return settings_from_attributes(attributes, lambda arn: arn.rsplit(":", 1)[-1])


def ensure_queues(store: QueueStore, settings: Settings, template: Template) -> list[str]:
    """Create (or update) the slow lane's queues in the SQS twin; their local names, dead-letter first."""
    names = []
    for logical_id in reversed(LOCAL_QUEUES):
        store.create_queue(settings.local_queue_name(logical_id), queue_settings(template, logical_id))
        names.append(settings.local_queue_name(logical_id))
    return names


def load_sqs_esm_config(
    template: Template, template_path: Path = TEMPLATE_PATH, function_id: str = SLOW_WORK_FUNCTION_ID
) -> SqsEsmConfig:
    """The SQS event (``SlowWork``) of ``SlowWorkFunction``, with AWS defaults for absent settings."""
    function = load_function_config(template, template_path, function_id)
    events = template.resource(function_id).get("Properties", {}).get("Events") or {}
    event = events.get(SLOW_WORK_EVENT_ID)
    if not event or event.get("Type") != "SQS":
        raise TemplateError(f"{function_id} has no SQS event named {SLOW_WORK_EVENT_ID}")
    raw_queue = (event.get("Properties") or {}).get("Queue")
    # The queue's logical id, from the unresolved !GetAtt <queue>.Arn.
    queue_value = getattr(raw_queue, "value", None)
    queue_id = queue_value[0] if isinstance(queue_value, list) and queue_value else None
    if not isinstance(queue_id, str):
        raise TemplateError(f"{SLOW_WORK_EVENT_ID}: Queue must be !GetAtt <queue>.Arn")
    props: dict[str, Any] = template.resolve(event.get("Properties") or {})
    scaling = props.get("ScalingConfig") or {}
    config = SqsEsmConfig(
        function=function,
        queue_id=queue_id,
        batch_size=int(props.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)),
        maximum_batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        function_response_types=tuple(str(t) for t in props.get("FunctionResponseTypes") or ()),
        maximum_concurrency=int(scaling.get("MaximumConcurrency", DEFAULT_MAXIMUM_CONCURRENCY)),
        enabled=str(props.get("Enabled", True)).lower() != "false",
    )
    problems = []
    if not 1 <= config.batch_size <= 10_000:
        problems.append("BatchSize must be 1 to 10000")
    if config.batch_size > 10 and config.maximum_batching_window_seconds <= 0:
        problems.append("BatchSize above 10 needs a MaximumBatchingWindowInSeconds")
    if not 2 <= config.maximum_concurrency <= 1000:
        problems.append("ScalingConfig.MaximumConcurrency must be 2 to 1000")
    if problems:
        raise TemplateError(f"{SLOW_WORK_EVENT_ID}: " + "; ".join(problems))
    return config
