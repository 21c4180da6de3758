"""The rollups consumer's settings, read from its environment (infra/template.yaml sets them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streamdesk_processor.environment import ENDPOINT_VARIABLES, table_name, whole_number

ROLLUPS_TABLE = "ROLLUPS_TABLE"
ROLLUP_RETENTION_DAYS = "ROLLUP_RETENTION_DAYS"
ROLLUP_WRITE_SHARDS = "ROLLUP_WRITE_SHARDS"

DEFAULT_RETENTION_DAYS = 400
DEFAULT_WRITE_SHARDS = 4
# How long a request's ledger entry outlives its last counted record: longer than the stream keeps a
# record (24 hours), so no redelivery can arrive after its entry expired.
LEDGER_TTL_SECONDS = 2 * 86_400


class ConfigError(ValueError):
    """The function's environment is wrong: it fails every invocation with this message."""


@dataclass(frozen=True)
class RollupsConfig:
    table_name: str
    retention_days: int = DEFAULT_RETENTION_DAYS
    write_shards: int = DEFAULT_WRITE_SHARDS

    def __post_init__(self) -> None:
        if not 3 <= len(self.table_name) <= 255:
            raise ConfigError(f"{ROLLUPS_TABLE} must name a DynamoDB table (3 to 255 characters)")
        if self.retention_days < 1:
            raise ConfigError(f"{ROLLUP_RETENTION_DAYS} must be at least 1, got {self.retention_days}")
        if not 1 <= self.write_shards <= 64:
            raise ConfigError(f"{ROLLUP_WRITE_SHARDS} must be 1 to 64, got {self.write_shards}")

    @property
    def retention_seconds(self) -> int:
        return self.retention_days * 86_400

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RollupsConfig:
        return cls(
            table_name=table_name(environ, ROLLUPS_TABLE, ConfigError),
            retention_days=whole_number(environ, ROLLUP_RETENTION_DAYS, DEFAULT_RETENTION_DAYS, ConfigError),
            write_shards=whole_number(environ, ROLLUP_WRITE_SHARDS, DEFAULT_WRITE_SHARDS, ConfigError),
        )


def environment_key(environ: Mapping[str, str]) -> tuple[str | None, ...]:
    names = (ROLLUPS_TABLE, ROLLUP_RETENTION_DAYS, ROLLUP_WRITE_SHARDS, *ENDPOINT_VARIABLES)
    return tuple(environ.get(name) for name in names)
