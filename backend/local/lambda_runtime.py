"""An in-process stand-in for the Lambda Python runtime: loads the function by the template's handler
string from its CodeUri directory, gives it the environment Lambda would (pointed at the local stack), and
calls it with a Lambda-shaped context.

Under ``make up`` the trigger runs in its own process, so setting ``os.environ`` is what Lambda does to the
function's sandbox. In tests the previous environment is restored by :meth:`LambdaRuntime.close`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from backend.local.esm_config import FunctionConfig
from backend.settings import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Settings
from backend.template import LOCAL_ACCOUNT_ID

log = logging.getLogger("streamdesk.trigger.runtime")

FUNCTION_VERSION: Final = "$LATEST"
# Variables a developer's shell may hold that would send the function's AWS calls elsewhere.
_UNSET_VARIABLES: Final = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


class HandlerLoadError(RuntimeError):
    """The handler string does not name an importable function (Runtime.ImportModuleError on AWS)."""


class FunctionTimeout(RuntimeError):
    """The function ran past its Timeout: Lambda discards the result and reports a function error."""


@dataclass
class LambdaContext:
    """The context object of the Lambda Python runtime (the attributes handlers and Powertools read)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    # The Python runtime passes this through from AWS_LAMBDA_FUNCTION_MEMORY_SIZE, as text.
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_epoch_ms: int
    identity: Any = None
    client_context: Any = None
    started_monotonic: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_epoch_ms - int(time.time() * 1000))


def function_arn(function: FunctionConfig, region: str, account_id: str = LOCAL_ACCOUNT_ID) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{function.function_name}"


def log_group_name(function: FunctionConfig) -> str:
    return f"/aws/lambda/{function.function_name}"


def new_log_stream_name() -> str:
    """Like Lambda's: one per sandbox, ``YYYY/MM/DD/[$LATEST]<hex>``."""
    return f"{datetime.now(UTC):%Y/%m/%d}/[{FUNCTION_VERSION}]{uuid.uuid4().hex}"


def new_context(function: FunctionConfig, region: str, log_stream: str) -> LambdaContext:
    """A fresh context for one invocation: new request id, deadline from the function's Timeout."""
    return LambdaContext(
        function_name=function.function_name,
        function_version=FUNCTION_VERSION,
        invoked_function_arn=function_arn(function, region),
        memory_limit_in_mb=str(function.memory_mb),
        aws_request_id=str(uuid.uuid4()),
        log_group_name=log_group_name(function),
        log_stream_name=log_stream,
        deadline_epoch_ms=int(time.time() * 1000 + function.timeout_seconds * 1000),
    )


def function_environment(settings: Settings, function: FunctionConfig, log_stream: str) -> dict[str, str]:
    """The function's variables from the template, plus what Lambda sets, aimed at the local stack."""
    kwargs = settings.boto3_kwargs()
    env = dict(function.environment)
    # No X-Ray daemon locally: Powertools' tracer would only complain (the template asks for tracing).
    env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    env.update(
        {
            "AWS_REGION": settings.region,
            "AWS_DEFAULT_REGION": settings.region,
            "AWS_ENDPOINT_URL_DYNAMODB": settings.dynamodb_url,
            "AWS_ENDPOINT_URL_SQS": settings.sqs_url,
            "AWS_ACCESS_KEY_ID": str(kwargs.get("aws_access_key_id") or LOCAL_ACCESS_KEY),
            "AWS_SECRET_ACCESS_KEY": str(kwargs.get("aws_secret_access_key") or LOCAL_SECRET_KEY),
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": FUNCTION_VERSION,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group_name(function),
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "_HANDLER": function.handler,
        }
    )
    return env


class LambdaRuntime:
    """Loads one function and invokes it, the way the Lambda Python runtime would."""

    def __init__(self, settings: Settings, function: FunctionConfig) -> None:
        self.settings = settings
        self.function = function
        self.log_stream_name = new_log_stream_name()
        self.environment = function_environment(settings, function, self.log_stream_name)
        self._saved_environment: dict[str, str | None] | None = None
        self._handler: Callable[[Any, Any], Any] | None = None

    @property
    def function_arn(self) -> str:
        return function_arn(self.function, self.settings.region)

    # ---------------------------------------------------------------------------------- environment
    def apply_environment(self) -> None:
        """Put the function's environment into ``os.environ`` (remembering what was there)."""
        names = [*self.environment, *_UNSET_VARIABLES]
        if self._saved_environment is None:
            self._saved_environment = {name: os.environ.get(name) for name in names}
        for name in _UNSET_VARIABLES:
            if name in os.environ:
                del os.environ[name]
        # Only what differs: concurrent invocations (ParallelizationFactor) then never write the process
        # environment while another one reads it.
        changed = {name: value for name, value in self.environment.items() if os.environ.get(name) != value}
        if changed:
            os.environ.update(changed)

    def close(self) -> None:
        """Restore the environment as it was before the first invocation."""
        saved, self._saved_environment = self._saved_environment, None
        for name, value in (saved or {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    # -------------------------------------------------------------------------------------- handler
    def handler(self) -> Callable[[Any, Any], Any]:
        """The function named by the handler string, imported from the code directory (once)."""
        if self._handler is not None:
            return self._handler
        module_name, _, attribute = self.function.handler.rpartition(".")
        if not module_name or not attribute:
            raise HandlerLoadError(f"bad handler {self.function.handler!r}: expected 'module.function'")
        code_dir = str(self.function.code_dir)
        if not self.function.code_dir.is_dir():
            raise HandlerLoadError(f"code directory {code_dir} does not exist")
        if code_dir not in sys.path:
            # Lambda puts the task root first on the path, before the runtime's own packages.
            sys.path.insert(0, code_dir)
        self.apply_environment()  # module-level code (clients, settings) reads the environment
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise HandlerLoadError(f"Unable to import module '{module_name}': {error}") from error
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise HandlerLoadError(f"Handler '{attribute}' missing on module '{module_name}'")
        self._handler = handler
        log.info("loaded %s from %s", self.function.handler, code_dir)
        return handler

    def new_context(self) -> LambdaContext:
        return new_context(self.function, self.settings.region, self.log_stream_name)

    def invoke(self, event: dict[str, Any], context: Any = None) -> Any:
        """Call the handler synchronously; raises what it raises, or :class:`FunctionTimeout`."""
        handler = self.handler()
        self.apply_environment()
        context = context if context is not None else self.new_context()
        started = time.monotonic()
        result = handler(event, context)
        elapsed = time.monotonic() - started
        # Lambda would have stopped the function at its Timeout and discarded the result; in-process we
        # cannot stop it, but the outcome is the same function error.
        if elapsed > self.function.timeout_seconds:
            raise FunctionTimeout(f"Task timed out after {self.function.timeout_seconds:.2f} seconds")
        return result
