"""The function's settings, read from its environment (infra/template.yaml sets them) and validated once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streamdesk_processor.environment import ENDPOINT_VARIABLES, table_name, whole_number
from streamdesk_processor.errors import ConfigError

TABLE_NAME = "TABLE_NAME"
RETENTION_DAYS = "RETENTION_DAYS"
MAX_RETRIES = "MAX_RETRIES"
CONCURRENCY = "CONCURRENCY"  # records of different requests processed at once within a batch
# "true" obeys a request's `simulate` object (template parameter AllowSimulate); anything unset is off.
ALLOW_SIMULATE = "ALLOW_SIMULATE"
# The slow lane (docs/slow-lane.md). The processor hands long steps off only when the queue is set.
SLOW_WORK_QUEUE_URL = "SLOW_WORK_QUEUE_URL"
SLOW_WORK_THRESHOLD_MS = "SLOW_WORK_THRESHOLD_MS"  # a step expected to take this long is long
SLOW_WORK_MAX_RECEIVES = "SLOW_WORK_MAX_RECEIVES"  # the queue's maxReceiveCount (the worker's last try)
SLOW_WORK_VISIBILITY_SECONDS = "SLOW_WORK_VISIBILITY_SECONDS"  # the queue's VisibilityTimeout (retry cap)

# Used only when the variable is unset (the template always sets both).
DEFAULT_RETENTION_DAYS = 7
DEFAULT_MAX_RETRIES = 3
DEFAULT_CONCURRENCY = 16
DEFAULT_SLOW_WORK_THRESHOLD_MS = 1000
DEFAULT_SLOW_WORK_MAX_RECEIVES = 5
DEFAULT_SLOW_WORK_VISIBILITY_SECONDS = 360
MAX_CONCURRENCY = 100

# The event source mapping's own "retry until the record expires" value.
UNLIMITED_RETRIES = -1


@dataclass(frozen=True)
class ProcessorConfig:
    """What the processor needs to know about its deployment."""

    table_name: str
    retention_days: int = DEFAULT_RETENTION_DAYS
    max_retries: int = DEFAULT_MAX_RETRIES
    concurrency: int = DEFAULT_CONCURRENCY
    allow_simulate: bool = False
    slow_work_queue_url: str | None = None
    slow_work_threshold_ms: int = DEFAULT_SLOW_WORK_THRESHOLD_MS
    slow_work_max_receives: int = DEFAULT_SLOW_WORK_MAX_RECEIVES
    slow_work_visibility_seconds: int = DEFAULT_SLOW_WORK_VISIBILITY_SECONDS

    def __post_init__(self) -> None:
        if not 3 <= len(self.table_name) <= 255:
            raise ConfigError(f"{TABLE_NAME} must name a DynamoDB table (3 to 255 characters)")
        if self.retention_days < 1:
            raise ConfigError(f"{RETENTION_DAYS} must be at least 1, got {self.retention_days}")
        if self.max_retries < UNLIMITED_RETRIES:
            raise ConfigError(f"{MAX_RETRIES} must be -1 (unlimited) or more, got {self.max_retries}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ConfigError(f"{CONCURRENCY} must be 1 to {MAX_CONCURRENCY}, got {self.concurrency}")
        if self.slow_work_threshold_ms < 0:
            raise ConfigError(f"{SLOW_WORK_THRESHOLD_MS} must be 0 or more: {self.slow_work_threshold_ms}")
        if self.slow_work_max_receives < 1:
            raise ConfigError(f"{SLOW_WORK_MAX_RECEIVES} must be 1 or more: {self.slow_work_max_receives}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ProcessorConfig:
        return cls(
            table_name=table_name(environ, TABLE_NAME, ConfigError),
            retention_days=whole_number(environ, RETENTION_DAYS, DEFAULT_RETENTION_DAYS, ConfigError),
            max_retries=whole_number(environ, MAX_RETRIES, DEFAULT_MAX_RETRIES, ConfigError),
            concurrency=whole_number(environ, CONCURRENCY, DEFAULT_CONCURRENCY, ConfigError),
            allow_simulate=_flag(environ, ALLOW_SIMULATE),
            slow_work_queue_url=environ.get(SLOW_WORK_QUEUE_URL, "").strip() or None,
            slow_work_threshold_ms=whole_number(
                environ, SLOW_WORK_THRESHOLD_MS, DEFAULT_SLOW_WORK_THRESHOLD_MS, ConfigError
            ),
            slow_work_max_receives=whole_number(
                environ, SLOW_WORK_MAX_RECEIVES, DEFAULT_SLOW_WORK_MAX_RECEIVES, ConfigError
            ),
            slow_work_visibility_seconds=whole_number(
                environ, SLOW_WORK_VISIBILITY_SECONDS, DEFAULT_SLOW_WORK_VISIBILITY_SECONDS, ConfigError
            ),
        )

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86_400

    def retries_spent(self, attempts: int) -> bool:
        """True once a request has started ``max_retries + 1`` times (never with unlimited retries)."""
        return self.max_retries != UNLIMITED_RETRIES and attempts >= self.max_retries + 1

    @property
    def hands_off(self) -> bool:
        """True when long steps go to the slow lane (its queue is configured)."""
        return self.slow_work_queue_url is not None


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw not in ("", "true", "false"):
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return raw == "true"


def environment_key(environ: Mapping[str, str]) -> tuple[str | None, ...]:
    """The raw values the processor is built from: when they change, the processor is rebuilt."""
    names = (
        TABLE_NAME, RETENTION_DAYS, MAX_RETRIES, CONCURRENCY, ALLOW_SIMULATE, SLOW_WORK_QUEUE_URL,
        SLOW_WORK_THRESHOLD_MS, SLOW_WORK_MAX_RECEIVES, SLOW_WORK_VISIBILITY_SECONDS, *ENDPOINT_VARIABLES,
    )  # fmt: skip
    return tuple(environ.get(name) for name in names)
