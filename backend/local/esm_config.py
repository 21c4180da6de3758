"""A function and its DynamoDB event source mapping (the processor's, the rollups consumer's), read from
``infra/template.yaml``.

The trigger twin honours exactly what would be deployed: nothing here restates a value the template
holds. Settings the template leaves out take the values AWS uses when they are absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from backend.local.event_filter import EventFilter, FilterError
from backend.template import (
    FUNCTION_ID,
    ROLLUPS_FUNCTION_ID,
    ROLLUPS_STREAM_EVENT_ID,
    STREAM_EVENT_ID,
    TEMPLATE_PATH,
    Template,
    TemplateError,
)

# AWS's values for settings a DynamoDB event source mapping leaves out.
DEFAULT_BATCH_SIZE: Final = 100
DEFAULT_TIMEOUT_SECONDS: Final = 3
DEFAULT_MEMORY_MB: Final = 128
INFINITE: Final = -1  # MaximumRetryAttempts / MaximumRecordAgeInSeconds: until the record expires
REPORT_BATCH_ITEM_FAILURES: Final = "ReportBatchItemFailures"
STARTING_POSITIONS: Final = ("TRIM_HORIZON", "LATEST")


@dataclass(frozen=True)
class FunctionConfig:
    """What the local Lambda runtime needs to load and call the function."""

    logical_id: str
    function_name: str
    handler: str  # "package.module.function"
    code_dir: Path  # CodeUri, resolved against the template's directory
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB
    runtime: str = "python3.12"
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EsmConfig:
    """A DynamoDB stream event source mapping (the ``Type: DynamoDB`` event of a SAM function)."""

    function: FunctionConfig
    event_id: str = STREAM_EVENT_ID
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = DEFAULT_BATCH_SIZE
    maximum_batching_window_seconds: float = 0.0
    maximum_retry_attempts: int = INFINITE
    maximum_record_age_seconds: int = INFINITE
    bisect_batch_on_function_error: bool = False
    parallelization_factor: int = 1
    function_response_types: tuple[str, ...] = ()
    filter_patterns: tuple[str, ...] = ()  # the Pattern strings of FilterCriteria.Filters
    on_failure_destination: str | None = None
    enabled: bool = True

    @property
    def report_batch_item_failures(self) -> bool:
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types

    def retries_exhausted(self, retries: int) -> bool:
        """True when ``retries`` retries (invocations after the first) used up MaximumRetryAttempts."""
        return self.maximum_retry_attempts != INFINITE and retries >= self.maximum_retry_attempts


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _function_properties(template: Template, function_id: str) -> dict[str, Any]:
    """The function's properties with the template's ``Globals.Function`` underneath (as SAM merges them)."""
    globals_ = template.resolve((template.raw.get("Globals") or {}).get("Function") or {})
    props = template.properties(function_id)
    merged: dict[str, Any] = {**globals_, **props}
    # SAM merges maps key by key: a function's Environment.Variables extend the global ones.
    global_vars = (globals_.get("Environment") or {}).get("Variables") or {}
    own_vars = (props.get("Environment") or {}).get("Variables") or {}
    merged["Environment"] = {"Variables": {**global_vars, **own_vars}}
    return merged


def load_function_config(
    template: Template, template_path: Path = TEMPLATE_PATH, function_id: str = FUNCTION_ID
) -> FunctionConfig:
    """The function's (default ``ProcessorFunction``) handler, code directory, timeout, memory and
    environment."""
    props = _function_properties(template, function_id)
    handler = props.get("Handler")
    code_uri = props.get("CodeUri")
    if not handler or not isinstance(code_uri, str):
        raise TemplateError(f"{function_id} needs a Handler and a local CodeUri")
    name = props.get("FunctionName") or f"{template.local.stack_name}-{function_id}"
    variables = props["Environment"]["Variables"]
    return FunctionConfig(
        logical_id=function_id,
        function_name=str(name),
        handler=str(handler),
        code_dir=(template_path.parent / code_uri).resolve(),
        timeout_seconds=float(props.get("Timeout", DEFAULT_TIMEOUT_SECONDS)),
        memory_mb=int(props.get("MemorySize", DEFAULT_MEMORY_MB)),
        runtime=str(props.get("Runtime", "python3.12")),
        environment={str(k): str(v) for k, v in variables.items()},
    )


# The stream event of each function the trigger twin runs, by the function's logical id.
STREAM_EVENTS: Final = {FUNCTION_ID: STREAM_EVENT_ID, ROLLUPS_FUNCTION_ID: ROLLUPS_STREAM_EVENT_ID}


def load_esm_config(
    template: Template, template_path: Path = TEMPLATE_PATH, function_id: str = FUNCTION_ID
) -> EsmConfig:
    """The DynamoDB stream event of a function (default: ``RequestsStream`` of ``ProcessorFunction``;
    ``RollupsFunction``: ``RollupsStream``), with AWS defaults for absent settings."""
    event_id = STREAM_EVENTS.get(function_id)
    if event_id is None:
        raise TemplateError(
            f"the trigger twin runs no mapping of {function_id}; known: {sorted(STREAM_EVENTS)}"
        )
    function = load_function_config(template, template_path, function_id)
    events = template.resource(function_id).get("Properties", {}).get("Events") or {}
    event = events.get(event_id)
    if not event or event.get("Type") != "DynamoDB":
        raise TemplateError(f"{function_id} has no DynamoDB event named {event_id}")
    props: dict[str, Any] = template.resolve(event.get("Properties") or {})

    starting_position = props.get("StartingPosition")
    if starting_position not in STARTING_POSITIONS:
        # Required for streams, and AT_TIMESTAMP is Kinesis-only.
        raise TemplateError(f"{event_id}: StartingPosition must be one of {STARTING_POSITIONS}")
    filters = (props.get("FilterCriteria") or {}).get("Filters") or []
    on_failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")

    config = EsmConfig(
        function=function,
        event_id=event_id,
        starting_position=str(starting_position),
        batch_size=int(props.get("BatchSize", DEFAULT_BATCH_SIZE)),
        maximum_batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        maximum_retry_attempts=int(props.get("MaximumRetryAttempts", INFINITE)),
        maximum_record_age_seconds=int(props.get("MaximumRecordAgeInSeconds", INFINITE)),
        bisect_batch_on_function_error=_bool(props.get("BisectBatchOnFunctionError", False)),
        parallelization_factor=int(props.get("ParallelizationFactor", 1)),
        function_response_types=tuple(str(t) for t in props.get("FunctionResponseTypes") or ()),
        filter_patterns=tuple(str(f["Pattern"]) for f in filters),
        on_failure_destination=str(on_failure) if on_failure else None,
        enabled=_bool(props.get("Enabled", True)),
    )
    _validate(config)
    return config


def _validate(config: EsmConfig) -> None:
    """The ranges AWS enforces when the mapping is created (the twin refuses what AWS would refuse)."""
    problems = []
    if not 1 <= config.batch_size <= 10_000:
        problems.append("BatchSize must be 1 to 10000")
    if not 0 <= config.maximum_batching_window_seconds <= 300:
        problems.append("MaximumBatchingWindowInSeconds must be 0 to 300")
    if not (config.maximum_retry_attempts == INFINITE or 0 <= config.maximum_retry_attempts <= 10_000):
        problems.append("MaximumRetryAttempts must be -1 or 0 to 10000")
    if not (
        config.maximum_record_age_seconds == INFINITE or 60 <= config.maximum_record_age_seconds <= 604_800
    ):
        problems.append("MaximumRecordAgeInSeconds must be -1 or 60 to 604800")
    if not 1 <= config.parallelization_factor <= 10:
        problems.append("ParallelizationFactor must be 1 to 10")
    try:
        EventFilter(config.filter_patterns)
    except FilterError as error:
        problems.append(f"FilterCriteria: {error}")
    if problems:
        raise TemplateError(f"{config.event_id}: " + "; ".join(problems))
