"""The function deploys on its own (CodeUri lambda/): it imports only the standard library, boto3/botocore
and Powertools, never the backend."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from backend.template import FUNCTION_ID, PROJECT_ROOT, ROLLUPS_FUNCTION_ID, Template

LAMBDA_DIR = PROJECT_ROOT / "lambda"
ALLOWED = {"boto3", "botocore", "aws_lambda_powertools", "streamdesk_processor", "streamdesk_rollups"}
# Type stubs, imported only under `if TYPE_CHECKING:` (checked at run time below).
TYPING_ONLY = {"mypy_boto3_dynamodb", "mypy_boto3_sqs"}


def imported_top_level_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_allowed_imports() -> None:
    sources = sorted(LAMBDA_DIR.rglob("*.py"))
    assert sources
    for path in sources:
        foreign = imported_top_level_modules(path) - ALLOWED - TYPING_ONLY - set(sys.stdlib_module_names)
        assert not foreign, f"{path.relative_to(PROJECT_ROOT)} imports {sorted(foreign)}"


def test_handler_imports_with_backend_and_stubs_unavailable() -> None:
    blocked = ["backend", *TYPING_ONLY]
    script = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked: " + name)
        return None
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(LAMBDA_DIR)!r})
import streamdesk_processor.handler as handler
assert handler.__file__.startswith({str(LAMBDA_DIR)!r}), handler.__file__
import streamdesk_rollups.handler as rollups
assert rollups.__file__.startswith({str(LAMBDA_DIR)!r}), rollups.__file__
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_template_points_at_the_handler() -> None:
    props = Template.load().properties(FUNCTION_ID)
    assert props["Handler"] == "streamdesk_processor.handler.lambda_handler"
    module, function = props["Handler"].rsplit(".", 1)
    assert (LAMBDA_DIR / Path(*module.split("."))).with_suffix(".py").is_file()
    assert function == "lambda_handler"
    assert set(props["Environment"]["Variables"]) >= {"TABLE_NAME", "RETENTION_DAYS", "MAX_RETRIES"}


def test_requirements_pin_powertools_with_a_range() -> None:
    lines = [
        line.strip()
        for line in (LAMBDA_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(line.startswith("aws-lambda-powertools") and ">=" in line and "<" in line for line in lines)


def test_template_points_at_the_rollups_handler() -> None:
    props = Template.load().properties(ROLLUPS_FUNCTION_ID)
    assert props["Handler"] == "streamdesk_rollups.handler.lambda_handler"
    module, function = props["Handler"].rsplit(".", 1)
    assert (LAMBDA_DIR / Path(*module.split("."))).with_suffix(".py").is_file()
    assert function == "lambda_handler"
    # One artifact for both functions: the rollups import the processor's item names.
    assert props["CodeUri"] == Template.load().properties(FUNCTION_ID)["CodeUri"]
    assert set(props["Environment"]["Variables"]) >= {
        "ROLLUPS_TABLE", "ROLLUP_RETENTION_DAYS", "ROLLUP_WRITE_SHARDS", "METRICS_SERVICE",
    }  # fmt: skip
