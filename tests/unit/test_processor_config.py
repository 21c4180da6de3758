"""The function's environment is validated once, with messages that name the variable."""

from __future__ import annotations

import pytest
from streamdesk_processor.config import ProcessorConfig, environment_key
from streamdesk_processor.errors import ConfigError


def test_reads_the_templates_variables() -> None:
    config = ProcessorConfig.from_env({"TABLE_NAME": "requests", "RETENTION_DAYS": "3", "MAX_RETRIES": "2"})
    assert config == ProcessorConfig(table_name="requests", retention_days=3, max_retries=2)
    assert config.retention_seconds == 3 * 86_400


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, "TABLE_NAME"),
        ({"TABLE_NAME": "ab"}, "TABLE_NAME"),
        ({"TABLE_NAME": "requests", "RETENTION_DAYS": "0"}, "RETENTION_DAYS"),
        ({"TABLE_NAME": "requests", "RETENTION_DAYS": "seven"}, "RETENTION_DAYS"),
        ({"TABLE_NAME": "requests", "MAX_RETRIES": "-2"}, "MAX_RETRIES"),
        ({"TABLE_NAME": "requests", "ALLOW_SIMULATE": "yes"}, "ALLOW_SIMULATE"),
    ],
)
def test_invalid_environment_is_refused(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ProcessorConfig.from_env(env)


def test_retries_are_spent_after_max_retries_plus_one_attempts() -> None:
    config = ProcessorConfig(table_name="requests", max_retries=2)
    assert [config.retries_spent(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    unlimited = ProcessorConfig(table_name="requests", max_retries=-1)
    assert unlimited.retries_spent(10_000) is False


def test_environment_key_changes_with_table_and_endpoint() -> None:
    base = {"TABLE_NAME": "a-table"}
    assert environment_key(base) != environment_key({"TABLE_NAME": "b-table"})
    assert environment_key(base) != environment_key({**base, "AWS_ENDPOINT_URL_DYNAMODB": "http://x:1"})
    assert environment_key(base) == environment_key({**base, "UNRELATED": "1"})
