"""The local twin runs the rollups consumer: two real trigger twins on one stream (the processor's mapping
and ``RollupsStream``, each with its own checkpoint), the real processor and the real rollups consumer
against DynamoDB Local. After a mixed run, the rollups equal a recount from the items exactly."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from streamdesk_processor import item as attr
from streamdesk_rollups.schema import Transition

from backend.local.local_template import local_template
from backend.local.table import ensure_table
from backend.local.trigger import Trigger
from backend.local.trigger_files import trigger_files
from backend.rollups.reader import RollupReader
from backend.rollups.rebuild import rebuild
from backend.settings import Settings
from backend.template import FUNCTION_ID, ROLLUPS_FUNCTION_ID, ROLLUPS_TABLE_ID, Template
from tests.processor_events import put_pending_item, read_item

SUCCEEDS: dict[str, Any] = {}
FAILS_FOR_GOOD = {"simulate": {"fail": "card declined for order 4711", "failAtStep": 2}}
FAILS_ONCE_TRANSIENTLY = {"simulate": {"fail": "gateway timeout", "transient": True, "failTimes": 1}}


def drain(trigger: Trigger, done: Callable[[], bool], timeout: float = 30.0) -> None:
    """poll_once until ``done`` (the stream may show a write a moment later); fails at the deadline."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the trigger did not deliver in time"
        trigger.poll_once()
        time.sleep(0.05)


def test_both_triggers_drain_a_mixed_run_and_the_rollups_equal_a_recount(
    ddb: Any, settings: Settings, template: Template
) -> None:
    ensure_table(ddb, settings.rollups_table, local_template(settings, template), ROLLUPS_TABLE_ID)
    since_ms = int(time.time() * 1000) - 60_000
    payloads = [SUCCEEDS] * 4 + [FAILS_FOR_GOOD, FAILS_ONCE_TRANSIENTLY]
    ids = [put_pending_item(ddb, settings.table, {"order": n, **p}) for n, p in enumerate(payloads)]

    def outcomes() -> list[str]:
        return [read_item(ddb, settings.table, request_id)[attr.STATUS] for request_id in ids]

    with ExitStack() as stack:  # closed in reverse: each runtime restores the environment it found
        processor = stack.enter_context(Trigger(settings, template))
        rollups = stack.enter_context(Trigger(settings, template, function_id=ROLLUPS_FUNCTION_ID))
        assert rollups.esm.event_id == "RollupsStream" and rollups.esm.parallelization_factor == 1
        assert rollups.esm.filter_patterns == ()
        drain(processor, lambda: outcomes() == ["SUCCEEDED"] * 4 + ["FAILED", "SUCCEEDED"])
        shards = int(rollups.esm.function.environment["ROLLUP_WRITE_SHARDS"])
        reader = RollupReader(ddb, settings.rollups_table, shards)
        until_ms = int(time.time() * 1000) + 60_000

        def counted() -> bool:
            counts = reader.total(since_ms, until_ms).counts
            return counts[Transition.SUCCEEDED] == 5 and counts[Transition.FAILED] == 1

        drain(rollups, counted)
        assert rollups.poll_once() == 0  # nothing left behind in the stream

    counts = reader.total(since_ms, until_ms).counts
    assert counts[Transition.ACCEPTED] == 6
    assert counts[Transition.RETRIED] == 1  # the transient failure handed back once
    assert counts[Transition.STARTED] == 7  # six claims, and the retry's second one
    assert reader.open_failures() == 1
    report = rebuild(ddb, settings.table, settings.rollups_table, shards, since_ms, until_ms)
    assert report.items_read == 6 and report.buckets_compared > 0
    assert report.differences == []

    # Each mapping keeps its own checkpoint: a new rollups trigger resumes where the first stopped.
    assert trigger_files(settings, FUNCTION_ID).checkpoint.exists()
    assert trigger_files(settings, ROLLUPS_FUNCTION_ID).checkpoint.exists()
    assert trigger_files(settings, ROLLUPS_FUNCTION_ID).checkpoint != settings.checkpoint_path
    with Trigger(settings, template, function_id=ROLLUPS_FUNCTION_ID) as restarted:
        assert restarted.poll_once() == 0
    assert reader.total(since_ms, until_ms).counts == counts
