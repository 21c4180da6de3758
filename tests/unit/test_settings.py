"""Settings: defaults for the local stack, the environment over secrets.toml, validation once."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.settings import Settings
from backend.template import PROJECT_ROOT


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for name in list(os.environ):
        if name.startswith("STREAMDESK_") or name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            monkeypatch.delenv(name)
    secrets = tmp_path / "secrets.toml"
    monkeypatch.setenv("STREAMDESK_SECRETS_FILE", str(secrets))
    return secrets


def test_defaults_point_at_the_local_stack() -> None:
    settings = Settings()
    assert (settings.api_port, settings.dynamodb_port, settings.dashboard_port) == (3000, 8000, 8501)
    assert settings.table == "streamdesk-requests"
    assert settings.data_dir == PROJECT_ROOT / ".data"
    assert settings.dynamodb_url == "http://127.0.0.1:8000"
    assert settings.api_base_url == "http://127.0.0.1:3000"
    assert settings.is_local and settings.listens_on_loopback_only
    assert settings.index_shards == 4  # the template's TimeIndexShards default


def test_environment_wins_over_secrets(clean_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environment.write_text(
        '[streamdesk]\ntable = "from-secrets"\napi_port = 4000\nREFRESH_SECONDS = 9\n'
    )
    monkeypatch.setenv("STREAMDESK_API_PORT", "5000")
    settings = Settings()
    assert settings.table == "from-secrets"
    assert settings.api_port == 5000
    assert settings.refresh_seconds == 9


def test_api_key_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "data").api_key
    assert len(first) >= 30
    assert Settings(data_dir=tmp_path / "data").api_key == first
    assert (tmp_path / "data" / "api-key").stat().st_mode & 0o077 == 0  # only the owner may read it
    assert Settings(data_dir=tmp_path / "data", STREAMDESK_API_KEY="given-key").api_key == "given-key"


@pytest.mark.parametrize(
    ("field", "value"),
    [("api_port", 0), ("table", "ab"), ("table", "bad name!"), ("refresh_seconds", 0.5), ("page_size", 1)],
)
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})


def test_a_deployed_stack_is_not_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings = Settings(stack="streamdesk")
    assert not settings.is_local
    assert settings.region == "eu-west-1"
    assert "endpoint_url" not in settings.boto3_kwargs()


def test_api_key_from_secrets_under_its_variable_name(clean_environment: Path) -> None:
    clean_environment.write_text('[streamdesk]\napi_key = "from-secrets-0123456789"\n')
    assert Settings().api_key == "from-secrets-0123456789"


def test_an_empty_key_file_is_never_the_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "api-key").write_text("")
    with pytest.raises(RuntimeError, match="stays empty"):
        _ = Settings(data_dir=data).api_key


def test_template_parameter_overrides_reach_the_dashboards_layout_too() -> None:
    """The local functions run the template with STREAMDESK_TEMPLATE_PARAMETERS applied; the dashboard must
    read the same layout (write shards, retention) or its counts would silently miss a part."""
    plain = Settings()
    overridden = Settings(
        template_parameters='{"RollupWriteShards": "7", "TimeIndexShards": "3", "RetentionDays": "2"}'
    )
    assert (overridden.rollups_shards, overridden.index_shards, overridden.succeeded_days) == (7, 3, 2)
    assert overridden.closed_days == plain.closed_days  # not overridden: the template's default
    assert (
        Settings(template_parameters='{"RollupWriteShards": "7"}', rollup_write_shards=5).rollups_shards == 5
    )
