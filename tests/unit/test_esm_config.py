"""The trigger twin reads the mapping and the function from the template, with AWS's defaults."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from backend.local.esm_config import EsmConfig, load_esm_config, load_function_config
from backend.template import PROJECT_ROOT, LocalValues, Template, TemplateError, load_raw


def test_mapping_from_the_template() -> None:
    esm = load_esm_config(Template.load(local=LocalValues(refs={"RequestsTable": "my-table"})))
    assert esm.starting_position == "TRIM_HORIZON"
    assert esm.batch_size == 10
    assert esm.maximum_batching_window_seconds == 0
    assert esm.maximum_retry_attempts == 3
    assert esm.maximum_record_age_seconds == 3600
    assert esm.bisect_batch_on_function_error is True
    assert esm.parallelization_factor == 4  # StreamParallelizationFactor's default
    assert esm.report_batch_item_failures
    assert len(esm.filter_patterns) == 2 and all('"eventName"' in p for p in esm.filter_patterns)
    assert esm.on_failure_destination is not None and "FailureQueue" in esm.on_failure_destination
    assert esm.enabled


def test_function_from_the_template_with_globals() -> None:
    function = load_function_config(Template.load(local=LocalValues(refs={"RequestsTable": "my-table"})))
    assert function.handler == "streamdesk_processor.handler.lambda_handler"
    assert function.code_dir == PROJECT_ROOT / "lambda"
    assert function.timeout_seconds == 30  # from Globals.Function
    assert function.memory_mb == 256
    assert function.runtime == "python3.12"
    assert function.environment["TABLE_NAME"] == "my-table"
    assert function.environment["MAX_RETRIES"] == "3"
    assert function.environment["RETENTION_DAYS"] == "7"
    assert function.function_name == "streamdesk-local-processor"


def test_parameters_flow_into_the_mapping() -> None:
    local = LocalValues(parameters={"StreamBatchSize": "25", "StreamMaxRetries": "0"})
    esm = load_esm_config(Template.load(local=local))
    assert esm.batch_size == 25
    assert esm.maximum_retry_attempts == 0
    assert esm.function.environment["MAX_RETRIES"] == "0"


def _stream_properties(raw: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = raw["Resources"]["ProcessorFunction"]["Properties"]["Events"]["RequestsStream"][
        "Properties"
    ]
    return props


def test_aws_defaults_for_absent_settings() -> None:
    raw = copy.deepcopy(load_raw())
    props = _stream_properties(raw)
    for key in list(props):
        if key not in ("Stream", "StartingPosition"):
            del props[key]
    del raw["Globals"]
    esm = load_esm_config(Template(raw))
    assert esm.batch_size == 100
    assert esm.maximum_batching_window_seconds == 0
    assert esm.maximum_retry_attempts == -1  # retry until the record expires
    assert esm.maximum_record_age_seconds == -1
    assert esm.bisect_batch_on_function_error is False
    assert esm.parallelization_factor == 1
    assert esm.function_response_types == () and not esm.report_batch_item_failures
    assert esm.filter_patterns == ()
    assert esm.on_failure_destination is None
    assert esm.function.timeout_seconds == 3 and esm.function.memory_mb == 128


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("StartingPosition", "AT_TIMESTAMP"),
        ("BatchSize", 0),
        ("MaximumRetryAttempts", -2),
        ("MaximumRecordAgeInSeconds", 30),
        ("ParallelizationFactor", 11),
        ("FilterCriteria", {"Filters": [{"Pattern": '{"eventName": "INSERT"}'}]}),
    ],
)
def test_what_aws_refuses_is_refused(key: str, value: Any) -> None:
    raw = copy.deepcopy(load_raw())
    _stream_properties(raw)[key] = value
    with pytest.raises(TemplateError):
        load_esm_config(Template(raw))


def test_missing_stream_event_is_an_error() -> None:
    raw = copy.deepcopy(load_raw())
    del raw["Resources"]["ProcessorFunction"]["Properties"]["Events"]["RequestsStream"]
    with pytest.raises(TemplateError):
        load_esm_config(Template(raw))


def test_retries_exhausted_counts_retries_after_the_first_invocation() -> None:
    function = load_function_config(Template.load())
    assert EsmConfig(function, maximum_retry_attempts=0).retries_exhausted(0)
    two = EsmConfig(function, maximum_retry_attempts=2)
    assert not two.retries_exhausted(1) and two.retries_exhausted(2)
    assert not EsmConfig(function).retries_exhausted(10_000)  # -1: never


def test_the_rollups_mapping_from_the_template() -> None:
    refs = {"RequestsTable": "my-table", "RollupsTable": "my-rollups"}
    esm = load_esm_config(Template.load(local=LocalValues(refs=refs)), function_id="RollupsFunction")
    assert esm.event_id == "RollupsStream"
    assert esm.function.logical_id == "RollupsFunction"
    assert esm.function.handler == "streamdesk_rollups.handler.lambda_handler"
    assert esm.function.environment["ROLLUPS_TABLE"] == "my-rollups"
    assert esm.parallelization_factor == 1  # the ledger relies on one batch per shard at a time
    assert esm.filter_patterns == ()  # every transition counts
    assert esm.batch_size == 100  # RollupBatchSize's default
    assert esm.maximum_retry_attempts == 10_000 and esm.maximum_record_age_seconds == 86_400
    assert esm.report_batch_item_failures and esm.bisect_batch_on_function_error
    assert esm.on_failure_destination is not None and "RollupsFailureQueue" in esm.on_failure_destination


def test_a_function_without_a_mapping_the_twin_runs_is_refused() -> None:
    with pytest.raises(TemplateError, match="runs no mapping of FailureQueue"):
        load_esm_config(Template.load(), function_id="FailureQueue")
