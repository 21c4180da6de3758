"""Lambda event filtering (the ``FilterCriteria`` of an event source mapping), applied to stream records.

A filter is a JSON pattern; a record is delivered when ANY filter matches it, and dropped (and
checkpointed) otherwise. Within a pattern every key must match (AND). A key maps either to a nested
pattern (an object) or to a list of acceptable values (OR). Supported conditions, as Lambda documents
them:

* exact values: strings, numbers, ``true``/``false``, ``null`` (``""`` matches an empty string);
* ``{"prefix": "x"}``, ``{"suffix": "x"}`` (either may wrap ``{"equals-ignore-case": "x"}``);
* ``{"equals-ignore-case": "x"}``;
* ``{"anything-but": v}`` with a value, a list of values, or a ``prefix``/``suffix``/
  ``equals-ignore-case`` condition;
* ``{"numeric": [">", 0, "<=", 5]}``, which only ever matches JSON numbers: a DynamoDB ``N`` value is a
  string in the record (``{"N": "5"}``), so numeric conditions never match it, on AWS as here;
* ``{"exists": true | false}``, which (as on AWS) only looks at leaf values: an object is not a leaf.

DynamoDB attribute values are matched in their typed form, e.g.
``{"dynamodb": {"NewImage": {"status": {"S": ["PENDING"]}}}}``. A record's value that is a list (a
string set, say) matches when any of its elements matches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final


class FilterError(ValueError):
    """A pattern Lambda would reject when the mapping is created."""


class _Missing:
    """The value of a key the record does not have (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()
_NUMERIC_OPERATORS: Final = ("=", "<", "<=", ">", ">=")
_STRING_OPERATORS: Final = ("prefix", "suffix", "equals-ignore-case")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_leaf(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# ------------------------------------------------------------------------------------------ validation
def _validate_string_operator(name: str, argument: Any, where: str) -> None:
    if name in ("prefix", "suffix") and isinstance(argument, Mapping):
        if set(argument) != {"equals-ignore-case"} or not isinstance(argument["equals-ignore-case"], str):
            raise FilterError(f"{where}: {name} takes a string or {{'equals-ignore-case': string}}")
        return
    if not isinstance(argument, str):
        raise FilterError(f"{where}: {name} takes a string")


def _validate_condition(condition: Any, where: str) -> None:
    if _is_leaf(condition):
        return
    if not isinstance(condition, Mapping) or len(condition) != 1:
        raise FilterError(
            f"{where}: a condition is a value or an object with one operator, not {condition!r}"
        )
    ((name, argument),) = condition.items()
    if name in _STRING_OPERATORS:
        _validate_string_operator(name, argument, where)
    elif name == "exists":
        if not isinstance(argument, bool):
            raise FilterError(f"{where}: exists takes true or false")
    elif name == "numeric":
        _validate_numeric(argument, where)
    elif name == "anything-but":
        if isinstance(argument, Mapping):
            if len(argument) != 1 or next(iter(argument)) not in _STRING_OPERATORS:
                raise FilterError(f"{where}: anything-but takes values or one of {_STRING_OPERATORS}")
            ((inner, inner_arg),) = argument.items()
            if inner == "equals-ignore-case" and isinstance(inner_arg, list):
                if not all(isinstance(v, str) for v in inner_arg):
                    raise FilterError(f"{where}: anything-but equals-ignore-case takes strings")
            else:
                _validate_string_operator(inner, inner_arg, where)
        else:
            values = argument if isinstance(argument, list) else [argument]
            if not values or not all(isinstance(v, str) or _is_number(v) for v in values):
                raise FilterError(f"{where}: anything-but takes strings or numbers")
    else:
        raise FilterError(f"{where}: unsupported operator {name!r}")


def _validate_numeric(argument: Any, where: str) -> None:
    if not isinstance(argument, list) or len(argument) not in (2, 4):
        raise FilterError(f"{where}: numeric takes [op, number] or [op, number, op, number]")
    for index in range(0, len(argument), 2):
        operator, operand = argument[index], argument[index + 1]
        if operator not in _NUMERIC_OPERATORS or not _is_number(operand):
            raise FilterError(f"{where}: numeric takes operators {_NUMERIC_OPERATORS} with numbers")


def _validate_pattern(pattern: Any, where: str) -> None:
    if not isinstance(pattern, Mapping) or not pattern:
        raise FilterError(f"{where}: a pattern is a non-empty JSON object")
    for key, value in pattern.items():
        path = f"{where}.{key}"
        if isinstance(value, Mapping):
            _validate_pattern(value, path)
        elif isinstance(value, list):
            if not value:
                raise FilterError(f"{path}: a list of conditions must not be empty")
            for condition in value:
                _validate_condition(condition, path)
        else:
            raise FilterError(f"{path}: values in a pattern are lists of conditions, not {value!r}")


def compile_pattern(pattern: str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse (if text) and validate one pattern; raises :class:`FilterError` on what Lambda rejects."""
    if isinstance(pattern, str):
        try:
            parsed = json.loads(pattern)
        except json.JSONDecodeError as error:
            raise FilterError(f"pattern is not JSON: {error}") from None
    else:
        parsed = pattern
    _validate_pattern(parsed, "pattern")
    return dict(parsed)


# ------------------------------------------------------------------------------------------- matching
def _string_matches(name: str, argument: Any, value: str) -> bool:
    if isinstance(argument, Mapping):  # prefix/suffix wrapping equals-ignore-case
        text, value = str(argument["equals-ignore-case"]).casefold(), value.casefold()
    else:
        text = str(argument)
    if name == "prefix":
        return value.startswith(text)
    if name == "suffix":
        return value.endswith(text)
    return value.casefold() == text.casefold()  # equals-ignore-case


def _numeric_matches(argument: Sequence[Any], value: float) -> bool:
    for index in range(0, len(argument), 2):
        operator, operand = argument[index], argument[index + 1]
        ok = {
            "=": value == operand,
            "<": value < operand,
            "<=": value <= operand,
            ">": value > operand,
            ">=": value >= operand,
        }[operator]
        if not ok:
            return False
    return True


def _equal(condition: Any, value: Any) -> bool:
    if condition is None or value is None:
        return condition is None and value is None
    if isinstance(condition, bool) or isinstance(value, bool):
        return isinstance(condition, bool) and isinstance(value, bool) and condition is value
    if _is_number(condition):
        return _is_number(value) and float(value) == float(condition)
    return isinstance(value, str) and value == condition


def _anything_but_matches(argument: Any, value: Any) -> bool:
    if not (isinstance(value, str) or _is_number(value)):
        return False
    if isinstance(argument, Mapping):
        ((name, inner),) = argument.items()
        if not isinstance(value, str):
            return False
        if name == "equals-ignore-case" and isinstance(inner, list):
            return all(value.casefold() != str(v).casefold() for v in inner)
        return not _string_matches(name, inner, value)
    values = argument if isinstance(argument, list) else [argument]
    return not any(_equal(v, value) for v in values)


def _condition_matches(condition: Any, value: Any) -> bool:
    """One condition against one leaf value of the record (``MISSING`` when absent)."""
    if isinstance(condition, Mapping):
        ((name, argument),) = condition.items()
        if name == "exists":
            present = value is not MISSING and _is_leaf(value)
            return present if argument else not present
        if value is MISSING:
            return False
        if name in _STRING_OPERATORS:
            return isinstance(value, str) and _string_matches(name, argument, value)
        if name == "numeric":
            return _is_number(value) and _numeric_matches(argument, float(value))
        if name == "anything-but":
            return _anything_but_matches(argument, value)
        return False
    if value is MISSING:
        return False
    return _equal(condition, value)


def _leaf_matches(conditions: Iterable[Any], value: Any) -> bool:
    conditions = list(conditions)
    if isinstance(value, list):
        # An array in the record matches when any element does. An empty array has no element to match;
        # it counts as present for "exists" (like AWS) only through its elements, so treat it as absent.
        candidates: list[Any] = [v for v in value if _is_leaf(v)] or [MISSING]
    else:
        candidates = [value]
    return any(_condition_matches(c, v) for c in conditions for v in candidates)


def matches(pattern: Mapping[str, Any], record: Any) -> bool:
    """True when ``record`` satisfies every key of ``pattern`` (a compiled pattern)."""
    for key, expected in pattern.items():
        value = record.get(key, MISSING) if isinstance(record, Mapping) else MISSING
        if isinstance(expected, Mapping):
            if not matches(expected, value if isinstance(value, Mapping) else {}):
                return False
        elif not _leaf_matches(expected, value):
            return False
    return True


class EventFilter:
    """The mapping's FilterCriteria: no filters means every record passes."""

    def __init__(self, patterns: Iterable[str | Mapping[str, Any]] = ()) -> None:
        self.patterns: tuple[dict[str, Any], ...] = tuple(compile_pattern(p) for p in patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def passes(self, record: Mapping[str, Any]) -> bool:
        """True when the record is delivered (any filter matches, or there are no filters)."""
        return not self.patterns or any(matches(p, record) for p in self.patterns)
