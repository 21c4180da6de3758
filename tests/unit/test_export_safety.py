"""What the dashboard makes of client data it shows or exports: a body nested deep does not blow up the
detail view, and no exported CSV cell runs as a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import json

import pytest

from backend.dashboard.export import export_csv
from backend.dashboard.formatting import PRETTY_MAX_GROWTH, json_depth, pretty_body
from backend.store.items import detail_from_item


def failed_item(message: str, body: str) -> dict[str, dict[str, str]]:
    return {
        "id": {"S": "req-1"},
        "status": {"S": "FAILED"},
        "createdAt": {"N": "1700000000000"},
        "request": {"S": body},
        "error": {"M": {"type": {"S": "BusinessError"}, "message": {"S": message}, "step": {"S": "charge"}}},
    }


@pytest.mark.parametrize(
    "dangerous",
    ['=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1+1"],
)
def test_no_exported_cell_starts_a_formula(dangerous: str) -> None:
    body = json.dumps({"note": dangerous})
    row = next(
        csv.DictReader(io.StringIO(export_csv([detail_from_item(failed_item(dangerous, body))]).decode()))
    )
    assert row["errorMessage"] == "'" + dangerous  # shown as text; the value still readable
    assert row["request"] == body  # starts with "{": left alone
    assert row["id"] == "req-1" and row["status"] == "FAILED"


def test_plain_cells_are_exported_as_they_are() -> None:
    row = next(
        csv.DictReader(
            io.StringIO(export_csv([detail_from_item(failed_item("card declined", "{}"))]).decode())
        )
    )
    assert row["errorMessage"] == "card declined" and row["createdAt"] == "1700000000000"


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth('{"a": [1, {"b": "[[[{{{"}]}') == 3
    assert json_depth('"\\"[["') == 0
    assert json_depth("[]") == 1


def test_a_body_nested_past_the_parser_is_shown_as_stored() -> None:
    deep = "[" * 5000 + "]" * 5000  # valid JSON; json.loads raises RecursionError on it
    text, language = pretty_body(deep)
    assert text == deep and language == "json"


def test_a_deeply_nested_body_does_not_grow_hundreds_of_times_when_shown() -> None:
    deep = json.dumps(json.loads("[" * 900 + "1" + "]" * 900))  # parses: the API accepts it
    text, _ = pretty_body(deep)
    assert len(text) <= PRETTY_MAX_GROWTH * len(deep) + 4096
    assert len(json.dumps(json.loads(deep), indent=2)) > 100 * len(deep)  # what indenting it would cost


def test_an_ordinary_body_is_indented() -> None:
    text, language = pretty_body('{"order": 1, "items": [1, 2]}')
    assert language == "json" and text.startswith('{\n  "order": 1')


def test_a_resolved_failure_exports_its_resolution_and_trail() -> None:
    item = failed_item("card declined", "{}") | {
        "status": {"S": "RESOLVED"},
        "ttl": {"N": "1800000000"},
        "resolution": {"M": {"reason": {"S": "duplicate"}, "note": {"S": "=T-1"}, "by": {"S": "ops"}}},
        "trail": {"L": [{"M": {"at": {"N": "1"}, "by": {"S": "ops"}, "action": {"S": "resolve"}}}]},
    }
    row = next(csv.DictReader(io.StringIO(export_csv([detail_from_item(item)]).decode())))
    assert (row["status"], row["ttl"], row["errorMessage"]) == ("RESOLVED", "1800000000", "card declined")
    assert json.loads(row["resolution"]) == {"reason": "duplicate", "note": "=T-1", "by": "ops"}
    assert json.loads(row["trail"]) == [{"at": 1, "by": "ops", "action": "resolve"}]
    plain = next(csv.DictReader(io.StringIO(export_csv([detail_from_item(failed_item("x", "{}"))]).decode())))
    assert plain["resolution"] == "" and plain["trail"] == ""
