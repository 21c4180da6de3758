"""The consumer's parts without DynamoDB: transaction-sized chunks, its settings, its CloudWatch metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from streamdesk_rollups.config import ConfigError, RollupsConfig
from streamdesk_rollups.consumer import ApplyReport
from streamdesk_rollups.deltas import MAX_TERMS_PER_ITEM, MAX_TRANSACTION_ITEMS, chunk
from streamdesk_rollups.metrics import publish
from streamdesk_rollups.schema import Grain, Stage, Transition, ledger_pk, padded_sequence
from streamdesk_rollups.transitions import Change

T0 = 1_790_000_000_000


def accepted(request: int, sequence: int, at: int = T0) -> Change:
    return Change(
        request_id=f"r{request}",
        sequence=padded_sequence(str(sequence)),
        ledger_key=ledger_pk("s", f"r{request}"),
        transitions=((Transition.ACCEPTED, at),),
    )


def test_a_big_batch_is_cut_in_order_into_transactions_that_fit() -> None:
    changes = [accepted(n, 1000 + n, T0 + n * 7_000) for n in range(450)]
    parts = list(chunk(changes))
    assert len(parts) >= 5
    assert [c for part in parts for c in part.changes] == changes  # nothing lost, order kept
    for part in parts:
        assert part.items <= MAX_TRANSACTION_ITEMS
        assert all(delta.terms <= MAX_TERMS_PER_ITEM for delta in part.buckets.values())
        minutes = sum(
            n for (grain, _), d in part.buckets.items() if grain is Grain.MINUTE for n in d.counters.values()
        )
        assert minutes == len(part.changes)


def test_one_requests_records_in_one_chunk_share_one_mark_from_first_to_last() -> None:
    first, second = accepted(1, 9), accepted(1, 10)
    (part,) = chunk([first, second])
    assert part.marks == {first.ledger_key: (first.sequence, second.sequence)}


def test_a_bucket_with_many_distinct_bins_is_split_before_the_expression_limit() -> None:
    changes = [
        Change(
            request_id=f"r{n}",
            sequence=padded_sequence(str(n + 1)),
            ledger_key=ledger_pk("s", f"r{n}"),
            transitions=((Transition.SUCCEEDED, T0),),
            latencies=(
                (Stage.QUEUE_WAIT, 1 + n * 37),
                (Stage.PROCESSING, 2 + n * 41),
                (Stage.END_TO_END, 3 + n * 53),
            ),
            finished_at=T0,
        )
        for n in range(90)
    ]
    parts = list(chunk(changes))
    assert len(parts) > 1  # 90 requests fit 100 items, but not 270 distinct bins in one update
    assert all(delta.terms <= MAX_TERMS_PER_ITEM for part in parts for delta in part.buckets.values())


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "ROLLUPS_TABLE is not set"),
        ({"ROLLUPS_TABLE": "ab"}, "3 to 255"),
        ({"ROLLUPS_TABLE": "rollups", "ROLLUP_RETENTION_DAYS": "0"}, "at least 1"),
        ({"ROLLUPS_TABLE": "rollups", "ROLLUP_RETENTION_DAYS": "a week"}, "whole number"),
        ({"ROLLUPS_TABLE": "rollups", "ROLLUP_WRITE_SHARDS": "65"}, "1 to 64"),
    ],
)
def test_a_wrong_environment_is_refused_with_its_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RollupsConfig.from_env(environ)


def test_defaults_and_values_from_the_environment() -> None:
    config = RollupsConfig.from_env({"ROLLUPS_TABLE": "rollups", "ROLLUP_WRITE_SHARDS": "8"})
    assert (config.table_name, config.write_shards, config.retention_seconds) == ("rollups", 8, 400 * 86_400)


def test_metrics_carry_what_was_newly_counted() -> None:
    sink = Metrics(namespace="StreamdeskTest", service="unit")
    done = Change(
        request_id="r",
        sequence=padded_sequence("5"),
        ledger_key=ledger_pk("s", "r"),
        transitions=((Transition.FAILED, T0),),
        latencies=((Stage.QUEUE_WAIT, 10), (Stage.PROCESSING, 20), (Stage.END_TO_END, 30)),
        finished_at=T0,
        open_failures=1,
    )
    closed = Change(
        request_id="c",
        sequence=padded_sequence("7"),
        ledger_key=ledger_pk("s", "c"),
        transitions=((Transition.RESOLVED, T0), (Transition.CANCELLED, T0), (Transition.CANCELLED, T0)),
        open_failures=-1,
    )
    try:
        publish(ApplyReport(applied=[accepted(1, 4), done, accepted(2, 6), closed]), sink)
        blob: dict[str, Any] = json.loads(json.dumps(sink.serialize_metric_set()))
    finally:
        sink.clear_metrics()
    assert blob["Accepted"] == [2.0] and blob["Failed"] == [1.0] and blob["Succeeded"] == [0.0]
    assert blob["Cancelled"] == [2.0] and blob["Resolved"] == [1.0] and blob["Reopened"] == [0.0]
    assert blob["EndToEndMs"] == [30.0] and blob["OpenFailuresDelta"] == [0.0]
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "StreamdeskTest"
    assert directive["Dimensions"] == [["service"]] and blob["service"] == "unit"
