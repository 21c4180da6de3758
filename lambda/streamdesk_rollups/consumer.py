"""The rollups consumer: one batch of stream records in, its rollup deltas applied exactly once.

All or nothing per batch: if anything fails, the first record is reported in ``batchItemFailures`` so the
mapping re-sends the whole batch with its backoff (raising instead would make Lambda bisect at once, without
counting retries). What a failed invocation had applied already is skipped on the redelivery by the ledger.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from streamdesk_rollups.config import LEDGER_TTL_SECONDS, RollupsConfig
from streamdesk_rollups.deltas import Chunk, chunk
from streamdesk_rollups.log import logger
from streamdesk_rollups.store import Conflict, MarkMoved, RollupStore
from streamdesk_rollups.transitions import Change, change_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Clock = Callable[[], float]
Sleep = Callable[[float], None]

MAX_TRIES: Final = 5  # per chunk, for conflicts with other transactions and marks that moved
BACKOFF_SECONDS: Final = 0.05


@dataclass
class ApplyReport:
    """What one batch did: changes newly counted, records skipped as already counted, transactions."""

    applied: list[Change] = field(default_factory=list)
    duplicates: int = 0
    transactions: int = 0


class RollupsConsumer:
    def __init__(
        self,
        config: RollupsConfig,
        client: DynamoDBClient,
        *,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.config = config
        self._store = RollupStore(client, config.table_name, retention_seconds=config.retention_seconds)
        self._clock = clock
        self._sleep = sleep

    def handle(self, event: Mapping[str, Any]) -> tuple[dict[str, Any], ApplyReport | None]:
        """The Lambda response (all or nothing) and, on success, what was applied."""
        records = event.get("Records")
        if not isinstance(records, list):
            logger.error("event without a Records list; failing the invocation")
            raise ValueError("a stream event carries a 'Records' list")
        if not records:
            return {"batchItemFailures": []}, ApplyReport()
        try:
            report = self.apply(records)
        except Exception:
            first = str(((records[0] or {}).get("dynamodb") or {}).get("SequenceNumber") or "")
            logger.exception("batch not applied; the whole batch will be re-sent", extra={"first": first})
            return {"batchItemFailures": [{"itemIdentifier": first}]}, None
        logger.info(
            "batch applied",
            extra={
                "records": len(records),
                "counted": len(report.applied),
                "duplicates": report.duplicates,
                "transactions": report.transactions,
            },
        )
        return {"batchItemFailures": []}, report

    def apply(self, records: Sequence[Mapping[str, Any]]) -> ApplyReport:
        """Count every record of the batch that is not counted yet; BadRecord for a malformed one."""
        changes = [change for change in map(change_of, records) if not change.empty]
        report = ApplyReport()
        for _ in range(MAX_TRIES):
            fresh = self._not_counted(changes)
            report.duplicates += len(changes) - len(fresh)
            try:
                for part in chunk(fresh):
                    self._apply_chunk(part, report)
                return report
            except MarkMoved:
                # Another invocation counted some of these meanwhile: read the marks again and go on
                # with what is still not counted (what this invocation applied is not a duplicate).
                logger.warning("a ledger mark moved; re-reading the marks")
                applied = {id(change) for change in report.applied}
                changes = [change for change in fresh if id(change) not in applied]
        raise RuntimeError(f"ledger marks kept moving; gave up after {MAX_TRIES} tries")

    def _not_counted(self, changes: Sequence[Change]) -> list[Change]:
        """The changes above their request's ledger mark, in order; duplicates within the batch dropped."""
        marks = self._store.marks(change.ledger_key for change in changes)
        fresh: list[Change] = []
        for change in changes:
            mark = marks.get(change.ledger_key)
            if mark is not None and change.sequence <= mark:
                continue
            marks[change.ledger_key] = change.sequence
            fresh.append(change)
        return fresh

    def _apply_chunk(self, part: Chunk, report: ApplyReport) -> None:
        """One transaction, on the write shard its first record picks (the next one after a conflict)."""
        shard = zlib.crc32(part.changes[0].sequence.encode()) % self.config.write_shards
        for attempt in range(1, MAX_TRIES + 1):
            try:
                self._store.apply(part, shard, int(self._clock()), LEDGER_TTL_SECONDS)
            except Conflict:
                if attempt == MAX_TRIES:
                    raise
                self._sleep(BACKOFF_SECONDS * 2**attempt)
                shard = (shard + 1) % self.config.write_shards  # another shard's items, most likely free
                continue
            report.applied.extend(part.changes)
            report.transactions += 1
            return
