"""One Lambda batch, its records processed concurrently: different requests at once (bounded), the records
of one request one after another in stream order.

The answer is Lambda's partial batch response, exact: it lists every record that is not durably done, i.e.
each record whose handler raised and every later record of the same request (they were not attempted,
so that one request's records never run out of order). The trigger re-sends from the lowest listed
sequence number; records after it that did finish are skipped by the claim protocol on redelivery.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from streamdesk_processor.log import logger

RecordHandler = Callable[[Mapping[str, Any]], object]


def request_key(record: Mapping[str, Any]) -> str:
    """The record's item key: records with the same key are one request's and keep their order."""
    keys = (record.get("dynamodb") or {}).get("Keys")
    return json.dumps(keys, sort_keys=True) if keys else f"#record:{record.get('eventID')}"


def sequence_number(record: Mapping[str, Any]) -> str:
    return str((record.get("dynamodb") or {}).get("SequenceNumber", ""))


def _run_in_order(records: list[Mapping[str, Any]], handle: RecordHandler) -> list[int]:
    """Handle one request's records in order; the positions (in ``records``) of those not done."""
    for position, record in enumerate(records):
        try:
            handle(record)
        except Exception:
            logger.exception(
                "record failed; reported for redelivery with the rest of its request's records",
                extra={"eventID": record.get("eventID"), "notDone": len(records) - position},
            )
            return list(range(position, len(records)))
    return []


def run_batch(
    records: list[Mapping[str, Any]], handle: RecordHandler, executor: Executor | None
) -> dict[str, list[dict[str, str]]]:
    """``{"batchItemFailures": [{"itemIdentifier": <SequenceNumber>}, ...]}`` in stream order.

    ``executor`` None processes the groups one after another (concurrency 1).
    """
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(request_key(record), []).append(index)
    members = list(groups.values())

    def run_group(indexes: list[int]) -> list[int]:
        return [indexes[p] for p in _run_in_order([records[i] for i in indexes], handle)]

    if executor is None or len(members) == 1:
        failed_lists = [run_group(group) for group in members]
    else:
        failed_lists = list(executor.map(run_group, members))
    failed = sorted(index for group in failed_lists for index in group)
    return {"batchItemFailures": [{"itemIdentifier": sequence_number(records[i])} for i in failed]}
