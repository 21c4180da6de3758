"""`simulate` is a demo and test aid: obeyed only where the deployment allows it (template parameter
AllowSimulate, off by default on AWS, on in the local stack)."""

from __future__ import annotations

from typing import Any

from streamdesk_processor import item
from streamdesk_processor.config import ProcessorConfig
from streamdesk_processor.item import Status

from backend.local.esm_config import load_esm_config
from backend.template import LocalValues, Template
from tests.processor_events import (
    insert_record,
    lambda_context,
    make_processor,
    put_pending_item,
    read_item,
    stream_event,
)

FORCED = {"order": 7, "simulate": {"fail": '=HYPERLINK("x")', "delayMs": 10_000}}


def _run(ddb: Any, table_name: str, *, allow_simulate: bool) -> tuple[dict[str, Any], list[float]]:
    slept: list[float] = []
    request_id = put_pending_item(ddb, table_name, FORCED)
    processor = make_processor(ddb, table_name, sleep=slept.append, allow_simulate=allow_simulate)
    event = stream_event(insert_record(ddb, table_name, request_id))
    assert processor.handle(event, lambda_context()) == {"batchItemFailures": []}
    return read_item(ddb, table_name, request_id), slept


def test_switched_off_a_client_cannot_force_a_failure_or_a_sleep(ddb: Any, table_name: str) -> None:
    done, slept = _run(ddb, table_name, allow_simulate=False)
    assert done[item.STATUS] == Status.SUCCEEDED
    assert slept == []


def test_switched_on_the_same_request_fails_as_it_asks(ddb: Any, table_name: str) -> None:
    done, slept = _run(ddb, table_name, allow_simulate=True)
    assert done[item.STATUS] == Status.FAILED
    assert sum(slept) > 0


def test_the_deployed_default_is_off_and_the_local_stack_turns_it_on() -> None:
    aws = Template.load(local=LocalValues(parameters={"AllowSimulate": "false"}))
    assert aws.raw["Parameters"]["AllowSimulate"]["Default"] == "false"
    deployed_env = load_esm_config(aws).function.environment
    deployed = ProcessorConfig.from_env({**deployed_env, "TABLE_NAME": "requests"})
    assert not deployed.allow_simulate
    local = Template.load()
    env = load_esm_config(local).function.environment
    assert env["ALLOW_SIMULATE"] == "true"
    assert ProcessorConfig.from_env({**env, "TABLE_NAME": "requests"}).allow_simulate
