"""The rollups table's writes and the ledger reads, one TransactWriteItems per chunk (docs/rollups.md).

Each chunk is applied atomically with the ledger marks of its requests: every mark's condition requires it
to be below the chunk's first sequence number of that request, so a chunk applies once or not at all, and
a redelivered record (whose mark is already at or above it) is never counted again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from streamdesk_rollups.deltas import BucketDelta, Chunk
from streamdesk_rollups.schema import (
    MARK,
    OPEN_FAILURES,
    PK,
    SK,
    TTL,
    Grain,
    gauge_pk,
    group_text_update,
    rollup_pk,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_LIMIT: Final = 100
_CANCELLED = "TransactionCanceledException"


class MarkMoved(RuntimeError):
    """A ledger mark was no longer below the chunk: another invocation counted some of its records."""


class Conflict(RuntimeError):
    """Another transaction was writing the same item at the same moment; worth another try."""


class RollupStore:
    def __init__(self, client: DynamoDBClient, table_name: str, *, retention_seconds: int) -> None:
        self._client = client
        self._table = table_name
        self._retention_seconds = retention_seconds

    def marks(self, ledger_keys: Iterable[str]) -> dict[str, str]:
        """Each ledger entry's mark (padded sequence number); entries that do not exist are absent."""
        wanted = sorted(set(ledger_keys))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys: list[dict[str, Any]] = [
                {PK: {"S": key}, SK: {"N": "0"}} for key in wanted[start : start + BATCH_GET_LIMIT]
            ]
            while keys:
                answer = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                )
                for entry in answer.get("Responses", {}).get(self._table, []):
                    found[entry[PK]["S"]] = entry[MARK]["S"]
                unprocessed: dict[str, Any] = dict(answer.get("UnprocessedKeys") or {})
                keys = list((unprocessed.get(self._table) or {}).get("Keys") or [])
        return found

    def apply(self, chunk: Chunk, shard: int, now_s: int, ledger_ttl_s: int) -> None:
        """Write the chunk in one transaction; MarkMoved or Conflict if DynamoDB cancelled it."""
        operations: list[dict[str, Any]] = [
            self._ledger(rid, m, now_s + ledger_ttl_s) for rid, m in chunk.marks.items()
        ]
        for (grain, bucket_ms), delta in sorted(chunk.buckets.items()):
            operations.append(self._rollup(grain, bucket_ms, shard, delta))
        # Group texts first and outside the transaction: idempotent, so a crash after them is harmless,
        # and a group failing everywhere at once must not make every shard's transactions conflict.
        for key, (error_type, pattern) in sorted(chunk.groups.items()):
            text_ttl = now_s + self._retention_seconds
            self._client.update_item(**group_text_update(self._table, key, error_type, pattern, text_ttl))
        if chunk.open_failures:
            operations.append(self._gauge(shard, chunk.open_failures))
        try:
            self._client.transact_write_items(TransactItems=operations)  # type: ignore[arg-type]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != _CANCELLED:
                raise
            reasons: list[Any] = list(error.response.get("CancellationReasons") or [])
            codes = [reason.get("Code") for reason in reasons]
            message = str(error)
            if "ConditionalCheckFailed" in codes or "ConditionalCheckFailed" in message:
                raise MarkMoved(message) from None
            if "TransactionConflict" in codes or "TransactionConflict" in message:
                raise Conflict(message) from None
            raise

    def _ledger(self, ledger_key: str, marks: tuple[str, str], ttl: int) -> dict[str, Any]:
        first, last = marks
        return {
            "Update": {
                "TableName": self._table,
                "Key": {PK: {"S": ledger_key}, SK: {"N": "0"}},
                "UpdateExpression": "SET #mark = :last, #ttl = :ttl",
                "ConditionExpression": "attribute_not_exists(#mark) OR #mark < :first",
                "ExpressionAttributeNames": {"#mark": MARK, "#ttl": TTL},
                "ExpressionAttributeValues": {
                    ":first": {"S": first},
                    ":last": {"S": last},
                    ":ttl": {"N": str(ttl)},
                },
            }
        }

    def _rollup(self, grain: Grain, bucket_ms: int, shard: int, delta: BucketDelta) -> dict[str, Any]:
        names: dict[str, str] = {"#ttl": TTL}
        values: dict[str, Any] = {":ttl": {"N": str(bucket_ms // 1000 + self._retention_seconds)}}
        adds = []
        for number, (attribute, amount) in enumerate(sorted(delta.counters.items())):
            names[f"#a{number}"], values[f":a{number}"] = attribute, {"N": str(amount)}
            adds.append(f"#a{number} :a{number}")
        expression = "SET #ttl = :ttl" + (" ADD " + ", ".join(adds) if adds else "")
        return {
            "Update": {
                "TableName": self._table,
                "Key": {PK: {"S": rollup_pk(grain, bucket_ms, shard)}, SK: {"N": str(bucket_ms)}},
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _gauge(self, shard: int, amount: int) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": {PK: {"S": gauge_pk(shard)}, SK: {"N": "0"}},
                "UpdateExpression": "ADD #open :amount",
                "ExpressionAttributeNames": {"#open": OPEN_FAILURES},
                "ExpressionAttributeValues": {":amount": {"N": str(amount)}},
            }
        }
