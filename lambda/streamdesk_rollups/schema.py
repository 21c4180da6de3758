"""The rollups table's layout, defined once (the consumer writes it, ``backend.rollups`` reads it).

One table, three kinds of item told apart by the partition key ``pk`` (S); the sort key ``sk`` (N):

- Rollup ``pk = "<grain>:<epoch day>:<write shard>"``, ``sk`` = the bucket's start (epoch ms), grain ``m``
  (a minute) or ``h`` (an hour). Counters ``n:<transition>``, error-group counters ``g:<group key>``,
  latency sketch bins ``<stage>:<bin>`` (see ``sketch.LatencySketch.to_counts``), and ``ttl`` (epoch
  seconds, the bucket's start plus the retention). Numbers only, so that an item stays small.
- Group ``pk = "group:<group key>"``, ``sk = 0``: the group's ``errorType`` and ``pattern`` (the folded
  message), once per group rather than in every bucket; ``ttl`` (the last failure plus the retention).
- Ledger ``pk = "ledger:<stream label>:<request id>"``, ``sk = 0``: ``mark``, the highest stream sequence
  number of that request already counted (zero-padded to 40 digits so that text order is number order),
  and ``ttl``.
- Gauge ``pk = "gauge:<write shard>"``, ``sk = 0``: ``openFailures`` (FAILED entered minus FAILED left).
  Read by summing the shards; never expires.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

PK: Final = "pk"
SK: Final = "sk"
TTL: Final = "ttl"
SEPARATOR: Final = ":"

MS_PER_MINUTE: Final = 60_000
MS_PER_HOUR: Final = 3_600_000
MS_PER_DAY: Final = 86_400_000


class Grain(StrEnum):
    """Bucket sizes: minutes for short ranges, hours for long ones (both written for every change)."""

    MINUTE = "m"
    HOUR = "h"

    @property
    def ms(self) -> int:
        return MS_PER_MINUTE if self is Grain.MINUTE else MS_PER_HOUR


class Transition(StrEnum):
    """The counted transitions of a request (docs/rollups.md gives the rule for each)."""

    ACCEPTED = "accepted"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"  # automatically, after a transient failure
    REDRIVEN = "redriven"  # by a person
    EXPIRED = "expired"  # deleted by TTL
    CANCELLED = "cancelled"  # PENDING -> CANCELLED, by DELETE /requests/{id} or an operator
    RESOLVED = "resolved"  # FAILED -> RESOLVED: a failure closed without a retry
    REOPENED = "reopened"  # RESOLVED -> FAILED: a closed failure opened again (not a new failure)


class Stage(StrEnum):
    """Latency stages, as the dashboard's ``backend.computed.stats.latency_frame`` defines them."""

    QUEUE_WAIT = "qw"
    PROCESSING = "pr"
    END_TO_END = "e2e"


COUNT_PREFIX: Final = "n"
GROUP_PREFIX: Final = "g"
GROUP_ITEM_PREFIX: Final = "group"
GROUP_ERROR_TYPE: Final = "errorType"
GROUP_PATTERN: Final = "pattern"
LEDGER_PREFIX: Final = "ledger"
GAUGE_PREFIX: Final = "gauge"
MARK: Final = "mark"
OPEN_FAILURES: Final = "openFailures"
SEQUENCE_DIGITS: Final = 40  # DynamoDB stream sequence numbers have 21 to 40 digits


def bucket_start(at_ms: int, grain: Grain) -> int:
    return at_ms - at_ms % grain.ms


def rollup_pk(grain: Grain, bucket_ms: int, shard: int) -> str:
    return SEPARATOR.join((grain.value, str(bucket_ms // MS_PER_DAY), str(shard)))


def ledger_pk(stream_label: str, request_id: str) -> str:
    """The ledger entry of one request in one stream (a stream enabled again restarts its numbering)."""
    return SEPARATOR.join((LEDGER_PREFIX, stream_label, request_id))


def stream_label(stream_arn: str | None) -> str:
    """The last part of a stream ARN (``.../stream/2026-11-27T00:00:00.000``), unique per table's stream."""
    return (stream_arn or "").rsplit("/", 1)[-1]


def group_pk(key: str) -> str:
    return f"{GROUP_ITEM_PREFIX}{SEPARATOR}{key}"


def gauge_pk(shard: int) -> str:
    return f"{GAUGE_PREFIX}{SEPARATOR}{shard}"


def count_attribute(transition: Transition) -> str:
    return f"{COUNT_PREFIX}{SEPARATOR}{transition.value}"


def group_attribute(prefix: str, key: str) -> str:
    return f"{prefix}{SEPARATOR}{key}"


def bin_attribute(stage: Stage, bin_key: str) -> str:
    return f"{stage.value}{SEPARATOR}{bin_key}"


def padded_sequence(sequence: str) -> str:
    """A stream sequence number as fixed-width text, so that DynamoDB's string comparison orders it as a
    number ("9" < "10"). ValueError for anything that is not a sequence number."""
    if not sequence.isascii() or not sequence.isdigit() or len(sequence) > SEQUENCE_DIGITS:
        raise ValueError(f"{sequence!r} is not a stream sequence number (1 to {SEQUENCE_DIGITS} digits)")
    return sequence.zfill(SEQUENCE_DIGITS)


def group_text_update(table: str, key: str, error_type: str, pattern: str, ttl: int) -> dict[str, Any]:
    """The UpdateItem arguments that record a failure group's texts (idempotent: the same key always
    carries the same texts)."""
    return {
        "TableName": table,
        "Key": {PK: {"S": group_pk(key)}, SK: {"N": "0"}},
        "UpdateExpression": "SET #type = :type, #pattern = :pattern, #ttl = :ttl",
        "ExpressionAttributeNames": {"#type": GROUP_ERROR_TYPE, "#pattern": GROUP_PATTERN, "#ttl": TTL},
        "ExpressionAttributeValues": {
            ":type": {"S": error_type},
            ":pattern": {"S": pattern},
            ":ttl": {"N": str(ttl)},
        },
    }
