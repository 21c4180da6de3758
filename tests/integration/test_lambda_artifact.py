"""The function as ``sam build`` packages it runs on its own: no project packages, no test helpers.

The build is laid out as SAM's Python builder does (the template's ``CodeUri`` copied, then
``pip install -r requirements.txt -t <build>``), and the handler named in the template is imported from
that directory alone, in a fresh virtual environment that has only boto3 (which the Lambda Python runtime
provides). A dependency missing from lambda/requirements.txt, or an import of ``backend``, fails here.

The virtual environment runs this machine's Python (3.11), not the runtime's 3.12, and pip installs
wheels for this machine, not arm64: pure-Python dependencies (all the function has) do not care.
pip needs PyPI, which developers and CI reach.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from streamdesk_processor import item
from streamdesk_processor.item import Status

from backend.template import FUNCTION_ID, ROLLUPS_FUNCTION_ID, TEMPLATE_PATH, Template
from tests.processor_events import (
    get_image,
    insert_record,
    put_pending_item,
    read_item,
    stream_event,
    ttl_remove_record,
)
from tests.rollups_workload import create_rollups_table

PIP_TIMEOUT_SECONDS = 300

# Calls the handler as the Lambda runtime does: module and function from the handler string, the event
# from stdin, a context object with the attributes Powertools reads; prints the result as JSON. It also
# reports where the package came from and whether the project's backend is importable.
RUNNER = textwrap.dedent(
    """
    import importlib, importlib.util, json, sys, uuid

    handler_string, event = sys.argv[1], json.load(sys.stdin)
    module_name, function_name = handler_string.rsplit(".", 1)

    class Context:
        function_name = "streamdesk-ProcessorFunction-artifact"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
        memory_limit_in_mb = 256
        aws_request_id = str(uuid.uuid4())
        log_group_name = "/aws/lambda/" + function_name
        log_stream_name = "artifact"
        def get_remaining_time_in_millis(self):
            return 30000

    handler = getattr(importlib.import_module(module_name), function_name)
    result = handler(event, Context())
    package = importlib.import_module(module_name.split(".")[0])
    print(json.dumps({
        "result": result,
        "package": package.__file__,
        "backend_importable": importlib.util.find_spec("backend") is not None,
        "pytest_importable": importlib.util.find_spec("pytest") is not None,
    }))
    """
)


@dataclass(frozen=True)
class Artifact:
    """A built function and an interpreter that has nothing but boto3."""

    build_dir: Path
    python: Path
    runner: Path
    handler: str


def _pip(python: Path, *args: str) -> None:
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def _sam_layout(template: Template, build_dir: Path, python: Path) -> None:
    """What ``sam build`` does for a python runtime: copy CodeUri, install its requirements beside it."""
    code_uri = str(template.properties(FUNCTION_ID)["CodeUri"])
    source = (TEMPLATE_PATH.parent / code_uri).resolve()
    assert source.is_dir(), f"CodeUri {code_uri} is not a directory"
    shutil.copytree(source, build_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    requirements = source / "requirements.txt"
    if requirements.is_file():  # sam build installs nothing when the file is absent
        _pip(python, "-r", str(requirements), "-t", str(build_dir))


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    root = tmp_path_factory.mktemp("lambda-artifact")
    venv = root / "venv"
    # The base interpreter, not this venv's: the new environment must not see the project's packages.
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    _pip(python, "boto3")  # the Lambda runtime ships boto3; nothing else of ours may be assumed
    template = Template.load()
    build_dir = root / "build" / FUNCTION_ID
    _sam_layout(template, build_dir, python)
    runner = root / "runner" / "invoke.py"
    runner.parent.mkdir()
    runner.write_text(RUNNER, encoding="utf-8")
    handler = str(template.properties(FUNCTION_ID)["Handler"])
    return Artifact(build_dir, python, runner, handler)


def _invoke(artifact: Artifact, event: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [str(artifact.python), str(artifact.runner), artifact.handler],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        cwd=artifact.build_dir,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"handler failed:\n{result.stdout}\n{result.stderr}"
    # Powertools logs JSON lines to stdout too; the runner's answer is the last line.
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def _lambda_env(artifact: Artifact, table_name: str, endpoint: str) -> dict[str, str]:
    """The variables Lambda and the template set, and nothing from this process (no PYTHONPATH, venv)."""
    template = Template.load()
    variables = template.properties(FUNCTION_ID)["Environment"]["Variables"]
    return {
        "PATH": f"{artifact.python.parent}:/usr/bin:/bin",
        "PYTHONPATH": str(artifact.build_dir),  # Lambda's LAMBDA_TASK_ROOT is on the path
        "LAMBDA_TASK_ROOT": str(artifact.build_dir),
        "HOME": str(artifact.build_dir.parent),
        "TABLE_NAME": table_name,
        "MAX_RETRIES": str(variables["MAX_RETRIES"]),
        "RETENTION_DAYS": str(variables["RETENTION_DAYS"]),
        "POWERTOOLS_SERVICE_NAME": str(variables["POWERTOOLS_SERVICE_NAME"]),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_LAMBDA_FUNCTION_NAME": "streamdesk-ProcessorFunction-artifact",
    }


def test_the_build_holds_the_code_and_its_dependencies(artifact: Artifact) -> None:
    assert (artifact.build_dir / "streamdesk_processor" / "handler.py").is_file()
    assert (artifact.build_dir / "aws_lambda_powertools").is_dir()
    # The artifact carries nothing of the dashboard or the local stack.
    assert not (artifact.build_dir / "backend").exists()


def test_ttl_removal_is_ignored(
    artifact: Artifact, ddb: Any, table_name: str, dynamodb_endpoint: str
) -> None:
    request_id = put_pending_item(ddb, table_name, {"hello": "world"})
    old_image = get_image(ddb, table_name, request_id)
    event = stream_event(ttl_remove_record(old_image))
    answer = _invoke(artifact, event, _lambda_env(artifact, table_name, dynamodb_endpoint))
    assert answer["result"] == {"batchItemFailures": []}
    # Loaded from the build directory alone.
    assert Path(answer["package"]).resolve().is_relative_to(artifact.build_dir.resolve())
    assert answer["backend_importable"] is False
    assert answer["pytest_importable"] is False
    # Nothing was written for a removal.
    assert get_image(ddb, table_name, request_id) == old_image


def test_a_new_request_ends_succeeded(
    artifact: Artifact, ddb: Any, table_name: str, dynamodb_endpoint: str
) -> None:
    request_id = put_pending_item(ddb, table_name, {"amount": 12, "note": "it's built"})
    event = stream_event(insert_record(ddb, table_name, request_id))
    answer = _invoke(artifact, event, _lambda_env(artifact, table_name, dynamodb_endpoint))
    assert answer["result"] == {"batchItemFailures": []}
    stored = read_item(ddb, table_name, request_id)
    assert stored[item.STATUS] == Status.SUCCEEDED
    assert stored[item.ATTEMPTS] == 1
    assert stored[item.STATE_BUCKET] == f"SUCCEEDED:{item.shard_of(stored[item.TIME_BUCKET])}"
    assert stored[item.TTL] > stored[item.FINISHED_AT] // 1000
    assert stored[item.RESULT]


def test_the_same_build_runs_the_rollups_consumer(
    artifact: Artifact, ddb: Any, table_name: str, dynamodb_endpoint: str
) -> None:
    template = Template.load()
    rollups = template.properties(ROLLUPS_FUNCTION_ID)
    assert rollups["CodeUri"] == template.properties(FUNCTION_ID)["CodeUri"]
    consumer = replace(artifact, handler=str(rollups["Handler"]))
    rollups_table = create_rollups_table(ddb, f"{table_name}-rollups")
    request_id = put_pending_item(ddb, table_name, {"hello": "rollups"})
    env = {
        **_lambda_env(artifact, table_name, dynamodb_endpoint),
        "ROLLUPS_TABLE": rollups_table,
        "ROLLUP_WRITE_SHARDS": "1",
        "METRICS_SERVICE": "artifact-test",
    }
    answer = _invoke(consumer, stream_event(insert_record(ddb, table_name, request_id)), env)
    assert answer["result"] == {"batchItemFailures": []}
    assert answer["backend_importable"] is False
    rollup_items = [entry for entry in ddb.scan(TableName=rollups_table)["Items"] if "n:accepted" in entry]
    assert sorted(int(entry["n:accepted"]["N"]) for entry in rollup_items) == [1, 1]  # a minute and an hour
    ddb.delete_table(TableName=rollups_table)
