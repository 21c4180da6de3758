"""The template as the local stack sees it: the tables' logical ids mapped to the local tables' names."""

from __future__ import annotations

from dataclasses import replace

from backend.settings import Settings
from backend.template import (
    LOCAL_ACCOUNT_ID,
    ROLLUPS_TABLE_ID,
    SLOW_WORK_DLQ_ID,
    SLOW_WORK_QUEUE_ID,
    TABLE_ID,
    LocalValues,
    Template,
    default_raw_template,
)

LOCAL_QUEUES = (SLOW_WORK_QUEUE_ID, SLOW_WORK_DLQ_ID)  # the queues the SQS twin serves


def queue_url(settings: Settings, logical_id: str) -> str:
    """A local queue's URL on the SQS twin (what ``!Ref <queue>`` is on AWS)."""
    return f"{settings.sqs_url}/{LOCAL_ACCOUNT_ID}/{settings.local_queue_name(logical_id)}"


def queue_arn(settings: Settings, logical_id: str) -> str:
    return f"arn:aws:sqs:{settings.region}:{LOCAL_ACCOUNT_ID}:{settings.local_queue_name(logical_id)}"


def local_template(settings: Settings, template: Template | None = None) -> Template:
    """``template`` (default: the project's) with its intrinsics resolved for this machine's stack (and
    the parameter overrides of ``STREAMDESK_TEMPLATE_PARAMETERS``):
    ``!Ref RequestsTable`` is ``settings.table``, ``!Ref RollupsTable`` is ``settings.rollups_table``,
    ``!Ref SlowWorkQueue`` its URL on the SQS twin (and ``.Arn`` its ARN), the region is
    ``settings.region``."""
    refs = {
        TABLE_ID: settings.table,
        ROLLUPS_TABLE_ID: settings.rollups_table,
        **{queue: queue_url(settings, queue) for queue in LOCAL_QUEUES},
    }
    arns = {f"{queue}.Arn": queue_arn(settings, queue) for queue in LOCAL_QUEUES}
    overrides = settings.parameter_overrides
    if template is None:
        return Template(
            default_raw_template(),
            LocalValues(refs=refs, attributes=arns, parameters=overrides, region=settings.region),
        )
    return Template(
        template.raw,
        replace(
            template.local,
            refs={**template.local.refs, **refs},
            attributes={**template.local.attributes, **arns},
            parameters={**template.local.parameters, **overrides},
            region=settings.region,
        ),
    )
