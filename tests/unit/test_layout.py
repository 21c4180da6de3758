"""The dashboard's layout rules, checked on the source: pages only lay out (no boto3, no DynamoDB request,
no cache, no attribute or status name), streamlit is imported by the dashboard's glue only, and every cache
the dashboard keeps is one that "Refresh now" clears."""

from __future__ import annotations

import ast
from pathlib import Path

from streamdesk_processor import item

from backend.template import PROJECT_ROOT

PAGES = [PROJECT_ROOT / "dashboard.py", *sorted((PROJECT_ROOT / "pages").glob("*.py"))]
GLUE = PROJECT_ROOT / "backend" / "dashboard"
# What a DynamoDB request is made of: a page naming one of these builds one.
DYNAMODB_REQUEST_WORDS = (
    "TableName",
    "KeyConditionExpression",
    "ExpressionAttribute",
    "ProjectionExpression",
)
SCHEMA_NAMES = {
    value
    for name, value in vars(item).items()
    if name.isupper() and isinstance(value, str) and len(value) > 1
} | {status.value for status in item.Status}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def _cache_decorated(tree: ast.Module) -> list[str]:
    """Functions decorated with st.cache_data / st.cache_resource."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr in ("cache_data", "cache_resource"):
                    found.append(node.name)
    return found


def _keys_looked_up(tree: ast.Module) -> set[str]:
    """String constants used as a subscript (``x["status"]``) or as the key of ``.get("status")``."""
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            keys.add(str(node.slice.value))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            keys.add(str(node.args[0].value))
    return keys


def _compared_strings(tree: ast.Module) -> set[str]:
    """String constants compared against something (``status == "FAILED"``, ``x in ("PENDING", ...)``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for part in [node.left, *node.comparators]:
                for constant in ast.walk(part):
                    if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                        found.add(constant.value)
    return found


def test_pages_import_neither_boto3_nor_the_store_reader_and_build_no_dynamodb_request() -> None:
    for path in PAGES:
        tree = _tree(path)
        assert not _imported(tree) & {"boto3", "botocore"}, path
        text = path.read_text(encoding="utf-8")
        assert (
            "backend.store.reader" not in text and "backend.store.actions import RequestActions" not in text
        )
        assert not [word for word in DYNAMODB_REQUEST_WORDS if word in text], path


def test_pages_define_no_cache() -> None:
    for path in PAGES:
        assert _cache_decorated(_tree(path)) == [], path


def test_pages_spell_no_attribute_or_status_name() -> None:
    for path in PAGES:
        tree = _tree(path)
        assert not _keys_looked_up(tree) & SCHEMA_NAMES, path
        assert not _compared_strings(tree) & SCHEMA_NAMES, path


def test_streamlit_is_imported_by_the_pages_and_the_dashboard_glue_only() -> None:
    backend = PROJECT_ROOT / "backend"
    for path in sorted(backend.rglob("*.py")):
        if GLUE in path.parents:
            continue
        assert "streamlit" not in _imported(_tree(path)), path


def test_every_dashboard_cache_is_cleared_by_refresh_now() -> None:
    reads = GLUE / "reads.py"
    tree = _tree(reads)
    data_caches = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr == "cache_data":
                    data_caches.add(node.name)
    [clear] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "clear_caches"]
    cleared = {n.id for n in ast.walk(clear) if isinstance(n, ast.Name)}
    assert data_caches and data_caches <= cleared
    others = [p for p in GLUE.glob("*.py") if p != reads and _cache_decorated(_tree(p))]
    assert others == []  # the one cache policy lives in reads.py
