"""Lambda event filtering as the trigger twin applies it (the template's filters first)."""

from __future__ import annotations

from typing import Any

import pytest

from backend.local.esm_config import load_esm_config
from backend.local.event_filter import EventFilter, FilterError, compile_pattern, matches
from backend.template import Template


def _record(name: str, new: str | None = None, old: str | None = None, **extra: Any) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {"Keys": {"id": {"S": "r1"}}, "SequenceNumber": "1", "SizeBytes": 10}
    if new is not None:
        dynamodb["NewImage"] = {"id": {"S": "r1"}, "status": {"S": new}}
    if old is not None:
        dynamodb["OldImage"] = {"id": {"S": "r1"}, "status": {"S": old}}
    return {"eventID": "e1", "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": dynamodb, **extra}


@pytest.fixture(scope="module")
def template_filter() -> EventFilter:
    return EventFilter(load_esm_config(Template.load()).filter_patterns)


@pytest.mark.parametrize(
    ("record", "delivered"),
    [
        (_record("INSERT", new="PENDING"), True),
        (_record("MODIFY", new="PENDING", old="FAILED"), True),  # a redrive
        (_record("MODIFY", new="PROCESSING", old="PENDING"), False),
        (_record("MODIFY", new="SUCCEEDED", old="PROCESSING"), False),
        (_record("MODIFY", new="FAILED", old="PROCESSING"), False),
        (_record("MODIFY", new="PENDING", old="PROCESSING"), False),  # a transient retry's reset
        (_record("REMOVE", old="SUCCEEDED"), False),
        (
            _record(
                "REMOVE",
                old="SUCCEEDED",
                userIdentity={"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            ),
            False,
        ),
        (_record("INSERT", new="FAILED"), False),
        # A record of an update that changed nothing (an idempotent retry, if a stream ever wrote one).
        (_record("MODIFY", new="PENDING", old="PENDING"), False),
        (_record("MODIFY", new="FAILED", old="FAILED"), False),
        (_record("MODIFY", new="SUCCEEDED", old="SUCCEEDED"), False),
    ],
)
def test_template_filters(template_filter: EventFilter, record: dict[str, Any], delivered: bool) -> None:
    assert len(template_filter.patterns) == 2
    assert template_filter.passes(record) is delivered


def test_no_filters_pass_everything() -> None:
    assert EventFilter().passes(_record("REMOVE", old="SUCCEEDED"))
    assert not EventFilter()


def test_any_filter_matching_is_enough() -> None:
    event_filter = EventFilter(['{"eventName": ["INSERT"]}', '{"eventName": ["REMOVE"]}'])
    assert event_filter.passes(_record("REMOVE", old="X"))
    assert not event_filter.passes(_record("MODIFY", new="X", old="Y"))


def _m(pattern: str, record: dict[str, Any]) -> bool:
    return matches(compile_pattern(pattern), record)


def test_exact_values_are_typed() -> None:
    record = {"a": "5", "n": 5, "b": True, "z": None, "e": ""}
    assert _m('{"a": ["5"]}', record)
    assert not _m('{"a": [5]}', record)  # a string is not a number
    assert _m('{"n": [5]}', record) and _m('{"n": [5.0]}', record)
    assert not _m('{"n": ["5"]}', record)
    assert _m('{"b": [true]}', record) and not _m('{"b": [1]}', record)
    assert _m('{"z": [null]}', record) and not _m('{"a": [null]}', record)
    assert _m('{"e": [""]}', record) and not _m('{"a": [""]}', record)
    assert _m('{"a": ["x", "5"]}', record)  # a list of values is an OR


def test_all_keys_must_match() -> None:
    record = {"a": "1", "b": "2"}
    assert _m('{"a": ["1"], "b": ["2"]}', record)
    assert not _m('{"a": ["1"], "b": ["3"]}', record)


def test_prefix_suffix_and_ignore_case() -> None:
    record = {"s": "PENDING:3"}
    assert _m('{"s": [{"prefix": "PEND"}]}', record)
    assert not _m('{"s": [{"prefix": "pend"}]}', record)
    assert _m('{"s": [{"prefix": {"equals-ignore-case": "pend"}}]}', record)
    assert _m('{"s": [{"suffix": ":3"}]}', record) and not _m('{"s": [{"suffix": ":4"}]}', record)
    assert _m('{"s": [{"equals-ignore-case": "pending:3"}]}', record)


def test_anything_but() -> None:
    assert _m('{"s": [{"anything-but": ["FAILED", "SUCCEEDED"]}]}', {"s": "PENDING"})
    assert not _m('{"s": [{"anything-but": ["FAILED", "PENDING"]}]}', {"s": "PENDING"})
    assert not _m('{"s": [{"anything-but": "PENDING"}]}', {"s": "PENDING"})
    assert _m('{"s": [{"anything-but": {"prefix": "FAIL"}}]}', {"s": "PENDING"})
    assert not _m('{"s": [{"anything-but": {"prefix": "PEND"}}]}', {"s": "PENDING"})
    assert not _m('{"s": [{"anything-but": ["X"]}]}', {})  # a missing key is not "anything but"


def test_exists() -> None:
    record = {"dynamodb": {"NewImage": {"error": {"M": {"type": {"S": "E"}}}, "ttl": {"N": "1"}}}}
    assert _m('{"dynamodb": {"NewImage": {"ttl": {"N": [{"exists": true}]}}}}', record)
    assert not _m('{"dynamodb": {"NewImage": {"ttl": {"N": [{"exists": false}]}}}}', record)
    assert _m('{"dynamodb": {"NewImage": {"gone": {"S": [{"exists": false}]}}}}', record)
    assert _m('{"dynamodb": {"OldImage": {"status": {"S": [{"exists": false}]}}}}', record)
    # exists looks at leaves only: an object is not one.
    assert not _m('{"dynamodb": {"NewImage": {"error": [{"exists": true}]}}}', record)


def test_numeric_matches_numbers_only() -> None:
    assert _m('{"SizeBytes": [{"numeric": [">", 0, "<=", 26]}]}', {"SizeBytes": 26})
    assert not _m('{"SizeBytes": [{"numeric": [">", 26]}]}', {"SizeBytes": 26})
    assert _m('{"n": [{"numeric": ["=", 3]}]}', {"n": 3.0})
    # A DynamoDB number is a string in the record: numeric conditions never match it (as on AWS).
    assert not _m('{"attempts": {"N": [{"numeric": [">", 0]}]}}', {"attempts": {"N": "5"}})


def test_nested_keys_and_lists_in_the_record() -> None:
    record = {"dynamodb": {"NewImage": {"tags": {"SS": ["red", "blue"]}, "status": {"S": "PENDING"}}}}
    assert _m('{"dynamodb": {"NewImage": {"tags": {"SS": ["blue"]}}}}', record)
    assert not _m('{"dynamodb": {"NewImage": {"tags": {"SS": ["green"]}}}}', record)
    assert not _m('{"dynamodb": {"NewImage": {"status": {"N": ["PENDING"]}}}}', record)  # typed
    assert not _m('{"dynamodb": {"OldImage": {"status": {"S": ["PENDING"]}}}}', record)
    assert not _m('{"dynamodb": ["x"]}', record)  # an object in the record is not a value


@pytest.mark.parametrize(
    "pattern",
    [
        "not json",
        "[]",
        "{}",
        '{"a": "INSERT"}',  # values must be lists
        '{"a": []}',
        '{"a": [{"prefix": 1}]}',
        '{"a": [{"numeric": [">"]}]}',
        '{"a": [{"numeric": ["~", 1]}]}',
        '{"a": [{"exists": "yes"}]}',
        '{"a": [{"wildcard": "x*"}]}',
        '{"a": [["nested"]]}',
        '{"a": [{"prefix": "x", "suffix": "y"}]}',
    ],
)
def test_invalid_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(FilterError):
        compile_pattern(pattern)
