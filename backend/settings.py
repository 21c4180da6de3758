"""Every setting of the local stack, the dashboard and the command line, validated once.

Sources, strongest first: environment variables ``STREAMDESK_*``; the ``[streamdesk]`` table of
``.streamlit/secrets.toml`` (keys without the prefix, lower case); the defaults below. The defaults run the
local stack on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from backend.clock import HOUR_MS
from backend.template import PROJECT_ROOT, Template, default_raw_template

SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"
API_KEY_FILE = "api-key"
# The addresses that reach this machine only.
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})
LOCAL_REGION = "us-east-1"
# DynamoDB Local accepts any credentials; these only have to be present.
LOCAL_ACCESS_KEY = "local"
LOCAL_SECRET_KEY = "local"


class _SecretsTomlSource(PydanticBaseSettingsSource):
    """The ``[streamdesk]`` table of ``.streamlit/secrets.toml``, where Streamlit users keep settings."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self._values: dict[str, Any] = {}
        path_override = os.environ.get("STREAMDESK_SECRETS_FILE")
        path = Path(path_override) if path_override else path
        if path.is_file():
            with path.open("rb") as handle:
                section = tomllib.load(handle).get("streamdesk", {})
            self._values = {str(k).lower(): v for k, v in section.items()}
            if "api_key" in self._values:  # written as the variable's name without the prefix
                self._values["api_key_value"] = self._values.pop("api_key")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


def _environment_region() -> str | None:
    """The AWS SDKs' own region variables, for a deployed stack when STREAMDESK_REGION is not set."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


class Settings(BaseSettings):
    """Where the stack is and how the dashboard behaves."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMDESK_", frozen=True, extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", description="Address every local component listens on.")
    api_port: int = Field(3000, ge=1, le=65535)
    dynamodb_port: int = Field(8000, ge=1, le=65535)
    dashboard_port: int = Field(8501, ge=1, le=65535)
    sqs_port: int = Field(9324, ge=1, le=65535, description="The SQS twin (the slow-work queue).")
    data_dir: Path = Field(PROJECT_ROOT / ".data", description="DynamoDB Local's files, checkpoints, key.")
    table: str = Field("streamdesk-requests", min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    api_key_value: str | None = Field(None, alias="STREAMDESK_API_KEY", description="Generated if unset.")

    # Where to reach things. Empty means "the local stack on host:port".
    dynamodb_endpoint: str | None = None
    api_url: str | None = None
    region: str = Field(default_factory=lambda: _environment_region() or LOCAL_REGION)
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    stack: str | None = Field(None, description="Name of a deployed CloudFormation stack to watch.")
    time_index_shards: int | None = Field(
        None, ge=1, le=32, description="Write shards of the indexes; the template's parameter if unset."
    )
    template_parameters: str = Field(
        "",
        description="Parameter overrides for the local stack's template, as JSON (like `sam deploy "
        '--parameter-overrides`), e.g. {"SlowWorkVisibilityTimeoutSeconds": "6"}; tests use it.',
    )
    closed_retention_days: int | None = Field(
        None,
        ge=1,
        le=3650,
        description="Days resolved or cancelled requests are kept; the template's if unset.",
    )
    retention_days: int | None = Field(
        None, ge=1, le=3650, description="Days succeeded requests are kept; the template's if unset."
    )
    rollups_table_name: str | None = Field(
        None,
        min_length=3,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The rollups table; '<table>-rollups' (the local stack's name) if unset.",
    )
    rollup_write_shards: int | None = Field(
        None, ge=1, le=64, description="Write shards of the rollups; the template's parameter if unset."
    )
    rollups_function_name: str | None = Field(
        None, description="The rollups consumer's function on a deployed stack (its mapping's health)."
    )

    # Behaviour of the dashboard.
    refresh_seconds: float = Field(5.0, ge=1.0, description="Auto-refresh interval (1 second at least).")
    expiring_horizon_hours: float = Field(24.0, gt=0)
    stuck_after_seconds: float = Field(300.0, gt=0)
    page_size: int = Field(50, ge=5, le=500)

    # Who may change things (see backend/roles.py and backend/access.py). With an OpenID Connect provider
    # in secrets ([auth]), people sign in with st.login: the verified e-mails in `operators` are
    # operators, those in `viewers` (e-mails, "@domain", or "*" for any verified account) viewers, and
    # nobody else gets in; otherwise one password per role; with neither, the local default runs as
    # operator, on 127.0.0.1 only.
    viewer_password: SecretStr | None = None
    operator_password: SecretStr | None = None
    operators: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()

    @field_validator("viewer_password", "operator_password")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty password would let in whoever submits the form empty: refuse to start instead.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is set but empty; unset it to turn password sign-in off, or give a password")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value if value.is_absolute() else (PROJECT_ROOT / value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretsTomlSource(settings_cls, SECRETS_PATH))

    # ------------------------------------------------------------------------------------ derived
    @property
    def listens_on_loopback_only(self) -> bool:
        return self.host in LOOPBACK_ADDRESSES

    @property
    def stuck_after_ms(self) -> int:
        """How long a request may stay pending or processing before it counts as stuck."""
        return int(self.stuck_after_seconds * 1000)

    @property
    def expiring_horizon_ms(self) -> int:
        """How close to its TTL deletion a succeeded request counts as expiring."""
        return int(self.expiring_horizon_hours * HOUR_MS)

    @property
    def is_local(self) -> bool:
        """True when the settings point at the local stack (no endpoint or stack given)."""
        return self.stack is None and self.dynamodb_endpoint is None

    @property
    def dynamodb_url(self) -> str:
        return self.dynamodb_endpoint or f"http://{self.host}:{self.dynamodb_port}"

    @property
    def parameter_overrides(self) -> dict[str, str]:
        """``template_parameters`` parsed (a JSON object of parameter names to values)."""
        if not self.template_parameters.strip():
            return {}
        parsed = json.loads(self.template_parameters)
        if not isinstance(parsed, dict):
            raise ValueError("STREAMDESK_TEMPLATE_PARAMETERS must be a JSON object")
        return {str(name): str(value) for name, value in parsed.items()}

    def template_int(self, name: str) -> int:
        """A whole-number parameter of the local template: ``STREAMDESK_TEMPLATE_PARAMETERS``'s value if it
        overrides it (as the local stack's functions see it), else the template's default; one rule, so
        that the dashboard reads the layout the local consumer and processor write."""
        override = self.parameter_overrides.get(name)
        if override is not None:
            return int(override)
        return Template(default_raw_template()).int_parameter(name)

    @property
    def sqs_url(self) -> str:
        """The local SQS twin's endpoint (``AWS_ENDPOINT_URL_SQS`` of the local functions)."""
        return f"http://{self.host}:{self.sqs_port}"

    @property
    def api_base_url(self) -> str:
        return (self.api_url or f"http://{self.host}:{self.api_port}").rstrip("/")

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.host}:{self.dashboard_port}"

    @property
    def index_shards(self) -> int:
        """How many write shards the time and open-state indexes use (template parameter by default)."""
        if self.time_index_shards is not None:
            return self.time_index_shards
        return self.template_int("TimeIndexShards")

    @property
    def closed_days(self) -> int:
        """How many days a resolved or cancelled request is kept (template parameter by default)."""
        if self.closed_retention_days is not None:
            return self.closed_retention_days
        return self.template_int("ClosedRetentionDays")

    @property
    def succeeded_days(self) -> int:
        """How many days a succeeded request is kept before TTL deletes it (template parameter by default)."""
        if self.retention_days is not None:
            return self.retention_days
        return self.template_int("RetentionDays")

    @cached_property
    def api_key(self) -> str:
        """The API key: given, or generated once and kept in the data dir (printed by ``make up``)."""
        if self.api_key_value:
            return self.api_key_value
        path = self.data_dir / API_KEY_FILE
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(50):
            if path.is_file():
                key = path.read_text(encoding="utf-8").strip()
                if key:
                    return key
                # Empty: another process is between creating and writing it (or it was truncated).
                # An empty key would let in a request with an empty x-api-key header: wait, never use it.
                time.sleep(0.1)
                continue
            try:
                # Written with 0600: the key grants write access to the API. O_EXCL: one writer wins.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue  # another process created it first: read theirs
            key = secrets.token_urlsafe(30)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(key + "\n")
            return key
        raise RuntimeError(f"{path} stays empty: delete it, and a new key is generated")

    def boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``boto3.client``/``resource`` aimed at this stack's DynamoDB."""
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.dynamodb_endpoint or self.is_local:
            kwargs["endpoint_url"] = self.dynamodb_url
        if self.aws_access_key_id and self.aws_secret_access_key:
            kwargs["aws_access_key_id"] = self.aws_access_key_id
            kwargs["aws_secret_access_key"] = self.aws_secret_access_key
        elif self.is_local:
            kwargs["aws_access_key_id"] = LOCAL_ACCESS_KEY
            kwargs["aws_secret_access_key"] = LOCAL_SECRET_KEY
        return kwargs

    @property
    def rollups_table(self) -> str:
        """The rollups table (``RollupsTable``): a deployed stack's output, else named after the requests
        table, so that two local stacks (or two tests) with different tables never share one."""
        return self.rollups_table_name or f"{self.table}-rollups"

    @property
    def rollups_shards(self) -> int:
        """How many write shards the rollups use (the template's ``RollupWriteShards`` by default)."""
        if self.rollup_write_shards is not None:
            return self.rollup_write_shards
        return self.template_int("RollupWriteShards")

    def local_queue_name(self, logical_id: str) -> str:
        """A local queue's name (``SlowWorkQueue``...): named after the requests table, like the rollups
        table, so that two stacks or tests never share a queue."""
        return f"{self.table}-{logical_id}"

    @property
    def sqs_database_path(self) -> Path:
        """The SQS twin's queues (SQLite)."""
        return self.data_dir / "sqs" / "queues.sqlite3"

    @property
    def slow_work_state_path(self) -> Path:
        """The slow-work event source twin's state (for the supervisor and the health page)."""
        return self.data_dir / "slow-work" / "state.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.data_dir / "trigger" / "checkpoints.json"

    @property
    def trigger_state_path(self) -> Path:
        return self.data_dir / "trigger" / "state.json"

    @property
    def failure_destination_path(self) -> Path:
        return self.data_dir / "trigger" / "failure-destination.jsonl"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and secrets; keyword overrides win (tests use them)."""
    return Settings(**overrides)
