"""Resubmit as new: after the API has accepted a copy of a request's body (a new request, a new id), link
the two both ways (``resubmittedFrom`` on the copy, ``resubmittedAs`` on the original), each with a trail
entry. The links are plain attributes: neither write changes a status, so the processor's conditional
updates and the trigger's filter are unaffected."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from streamdesk_processor import item as attr
from streamdesk_processor.item import TrailAction

from backend.roles import Actor, require_operator
from backend.store import trail
from backend.store.calls import TableCalls

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Linked:
    """Which side of a resubmission got its link (False: that request no longer exists)."""

    original: bool
    copy: bool


def link_resubmission(
    client: DynamoDBClient,
    table: str,
    original_id: str,
    copy_id: str,
    actor: Actor,
    clock: Callable[[], float] = time.time,
) -> Linked:
    """Record that ``copy_id`` was resubmitted from ``original_id`` on both requests."""
    require_operator(actor, "resubmit requests")
    if original_id == copy_id:
        raise ValueError("A request cannot be resubmitted as itself.")
    call = TableCalls(client, table)
    now = int(clock() * 1000)

    def update(request_id: str, assignment: str, names: dict[str, str], values: dict[str, Any]) -> bool:
        try:
            call(
                client.update_item,
                TableName=table,
                Key={attr.ID: {"S": request_id}},
                ConditionExpression="attribute_exists(#id)",
                UpdateExpression=f"SET {trail.APPEND} {assignment}",
                ExpressionAttributeNames={"#id": attr.ID, **trail.NAMES, **names},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    copy = update(
        copy_id,
        ", #from = :from",
        {"#from": attr.RESUBMITTED_FROM},
        {
            ":from": {"S": original_id},
            **trail.entry_values(TrailAction.RESUBMIT, actor.name, now, f"from {original_id}"),
        },
    )
    original = update(
        original_id,
        "ADD #as :as",
        {"#as": attr.RESUBMITTED_AS},
        {
            ":as": {"SS": [copy_id]},
            **trail.entry_values(TrailAction.RESUBMIT, actor.name, now, f"as {copy_id}"),
        },
    )
    return Linked(original=original, copy=copy)
