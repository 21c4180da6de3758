"""Java's side of Velocity for the VTL twin: how values print, their Java methods, and Velocity 1.7 operators.

What ``backend.local.vtl_engine`` plugs into airspeed so a template sees Java objects, not Python ones:
``velocity_str`` (Java's ``toString()``), Velocity 1.7 truthiness, the Java methods of strings, lists,
maps, numbers and booleans (Java regex and ``$1`` replacements), property lookup and method calls, and
the operators with Java's integer arithmetic and Velocity's comparisons.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


def velocity_str(value: Any) -> str:
    """A value as Java's ``toString()`` writes it (what Velocity prints for a reference)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{velocity_str(k)}={velocity_str(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(velocity_str(v) for v in value) + "]"
    return str(value)


def truthy(value: Any) -> bool:
    """Velocity 1.7: null and false are false, everything else (even "" and 0) is true."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    return True


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ------------------------------------------------------------------------- Java regex and strings
@lru_cache(maxsize=256)
def _java_regex(pattern: str) -> re.Pattern[str]:
    # Java and Python regex syntax agree on what templates use; \p{...} classes and the like do not port.
    return re.compile(pattern)


@dataclass(frozen=True)
class _Group:
    """A group reference in a Java replacement string (``$1`` or ``${name}``)."""

    ref: int | str


@lru_cache(maxsize=256)
def _java_replacement(replacement: str) -> Callable[[re.Match[str]], str]:
    """Java's Matcher.appendReplacement syntax: ``$1``/``${name}`` are groups, ``\\x`` is a literal x."""
    parts: list[str | _Group] = []
    literal: list[str] = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        following = replacement[i + 1] if i + 1 < len(replacement) else ""
        if char == "\\" and following:
            literal.append(following)
            i += 2
            continue
        if char != "$":
            literal.append(char)
            i += 1
            continue
        parts.append("".join(literal))
        literal = []
        if following == "{":
            end = replacement.index("}", i)
            parts.append(_Group(replacement[i + 2 : end]))
            i = end + 1
        elif following.isdigit():
            parts.append(_Group(int(following)))
            i += 2
        else:
            raise ValueError(f"illegal group reference in replacement {replacement!r}")
    parts.append("".join(literal))

    def expand(match: re.Match[str]) -> str:
        return "".join(part if isinstance(part, str) else (match.group(part.ref) or "") for part in parts)

    return expand


def _java_split(text: str, pattern: str, limit: int = 0) -> list[str]:
    """Java's String.split: a regex; with limit 0 trailing empty strings are dropped."""
    regex = _java_regex(_str_arg(pattern))
    pieces = regex.split(text, maxsplit=limit - 1) if limit > 0 else regex.split(text)
    first = regex.match(text)
    if text and pieces and pieces[0] == "" and first is not None and first.end() == 0:
        pieces = pieces[1:]  # Java drops the empty string a zero-width match at the start would make
    if limit == 0:
        while pieces and pieces[-1] == "":
            pieces.pop()
    return pieces


def _str_arg(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string argument, got {type(value).__name__}")
    return value


_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "length": lambda s: len(s),
    "isEmpty": lambda s: not s,
    "contains": lambda s, x: _str_arg(x) in s,
    "startsWith": lambda s, x, offset=0: s.startswith(_str_arg(x), offset),
    "endsWith": lambda s, x: s.endswith(_str_arg(x)),
    "equals": lambda s, x: isinstance(x, str) and s == x,
    "equalsIgnoreCase": lambda s, x: isinstance(x, str) and s.lower() == x.lower(),
    "indexOf": lambda s, x, start=0: s.find(_str_arg(x), start),
    "lastIndexOf": lambda s, x: s.rfind(_str_arg(x)),
    "substring": lambda s, begin, end=None: s[begin:end] if end is not None else s[begin:],
    "charAt": lambda s, index: s[index],
    "concat": lambda s, x: s + _str_arg(x),
    "replace": lambda s, old, new: s.replace(velocity_str(old), velocity_str(new)),
    "replaceAll": lambda s, pattern, repl: _java_regex(_str_arg(pattern)).sub(_java_replacement(repl), s),
    "replaceFirst": lambda s, pattern, repl: _java_regex(_str_arg(pattern)).sub(
        _java_replacement(repl), s, count=1
    ),
    "matches": lambda s, pattern: _java_regex(_str_arg(pattern)).fullmatch(s) is not None,
    "split": _java_split,
    "toLowerCase": lambda s: s.lower(),
    "toUpperCase": lambda s: s.upper(),
    # Java's trim() removes every character up to and including the space.
    "trim": lambda s: s.strip("".join(chr(c) for c in range(33))),
    "toString": lambda s: s,
}


def _list_add(items: list[Any], *args: Any) -> bool:
    if len(args) == 2:
        items.insert(args[0], args[1])
    else:
        items.append(args[0])
    return True


def _list_set(items: list[Any], index: int, value: Any) -> Any:
    previous = items[index]
    items[index] = value
    return previous


_LIST_METHODS: dict[str, Callable[..., Any]] = {
    "size": lambda items: len(items),
    "isEmpty": lambda items: not items,
    "get": lambda items, index: items[index],
    "contains": lambda items, value: value in items,
    "indexOf": lambda items, value: items.index(value) if value in items else -1,
    "add": _list_add,
    "addAll": lambda items, more: items.extend(more) or True,
    "set": _list_set,
    "remove": lambda items, index: items.pop(index),
    "toString": velocity_str,
}


def _map_put(mapping: dict[Any, Any], key: Any, value: Any) -> Any:
    previous = mapping.get(key)
    mapping[key] = value
    return previous


_MAP_METHODS: dict[str, Callable[..., Any]] = {
    "size": lambda m: len(m),
    "isEmpty": lambda m: not m,
    "get": lambda m, key: m.get(key),
    "containsKey": lambda m, key: key in m,
    "containsValue": lambda m, value: value in m.values(),
    "keySet": lambda m: list(m.keys()),
    "values": lambda m: list(m.values()),
    "entrySet": lambda m: [{"key": k, "value": v} for k, v in m.items()],
    "put": _map_put,
    "putAll": lambda m, other: m.update(other),
    "remove": lambda m, key: m.pop(key, None),
    "toString": velocity_str,
}

_NUMBER_METHODS: dict[str, Callable[..., Any]] = {
    "toString": velocity_str,
    "intValue": lambda n: int(n),
    "longValue": lambda n: int(n),
    "doubleValue": lambda n: float(n),
    "equals": lambda n, x: is_number(x) and type(n) is type(x) and n == x,
}

_BOOLEAN_METHODS: dict[str, Callable[..., Any]] = {
    "toString": velocity_str,
    "booleanValue": lambda b: b,
    "equals": lambda b, x: isinstance(x, bool) and b == x,
}


def _java_methods(value: Any) -> dict[str, Callable[..., Any]] | None:
    if isinstance(value, str):
        return _STRING_METHODS
    if isinstance(value, bool):
        return _BOOLEAN_METHODS
    if is_number(value):
        return _NUMBER_METHODS
    if isinstance(value, Mapping):
        return _MAP_METHODS
    if isinstance(value, list):
        return _LIST_METHODS
    return None


def _capitalised(name: str) -> str:
    return name[:1].upper() + name[1:]


def get_property(obj: Any, name: str) -> Any:
    """``$obj.name`` as Velocity's introspection resolves it (``get("name")`` on maps, getters)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    methods = _java_methods(obj)
    if methods is not None:
        for getter_name in ("get" + _capitalised(name), "is" + _capitalised(name)):
            if getter_name in methods:
                return methods[getter_name](obj)
        return None
    if name.startswith("_"):
        return None  # never expose Python internals to a template
    attribute = getattr(obj, name, None)
    if attribute is not None and not callable(attribute):
        return attribute
    getter = getattr(obj, "get" + _capitalised(name), None)
    return getter() if callable(getter) else None


def invoke_method(obj: Any, name: str, args: Sequence[Any]) -> Any:
    """``$obj.name(args)``: a Java method on builtin values, a public method on the helper objects."""
    if obj is None:
        return None
    methods = _java_methods(obj)
    if methods is not None:
        method = methods.get(name)
        if method is None:
            return None  # no such Java method: Velocity renders the reference as written
        try:
            return method(obj, *args)
        except TypeError as error:
            if "argument" in str(error):
                return None  # no overload with these parameter types: Velocity finds no method
            raise
    if name.startswith("_"):
        return None
    method = getattr(obj, name, None)
    return method(*args) if callable(method) else None


# ------------------------------------------------------------------------------------- operators
def _java_div(a: Any, b: Any) -> Any:
    if not (is_number(a) and is_number(b)):
        return None
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            return None  # Velocity logs the division by zero and yields null
        quotient = abs(a) // abs(b)
        return quotient if (a >= 0) == (b > 0) else -quotient
    return a / b if b != 0 else None


def _java_mod(a: Any, b: Any) -> Any:
    if not (is_number(a) and is_number(b)):
        return None
    if b == 0:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a - b * _java_div(a, b)
    return math.fmod(a, b)


def _java_add(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return a + b
    if isinstance(a, str) or isinstance(b, str):
        if a is None or b is None:
            return None
        return velocity_str(a) + velocity_str(b)
    return None


def _numeric(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if is_number(a) and is_number(b):
            return op(a, b)
        return None

    return apply


def _velocity_eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if is_number(a) and is_number(b):
        return bool(a == b)
    if type(a) is type(b):
        return bool(a == b)
    # Velocity 1.7 compares objects of different classes by their toString().
    return velocity_str(a) == velocity_str(b)


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if is_number(a) and is_number(b):
            return op(a, b)
        if isinstance(a, str) and isinstance(b, str):
            return op(a, b)
        return False

    return apply


OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">": _compare(operator.gt),
    "gt": _compare(operator.gt),
    ">=": _compare(operator.ge),
    "ge": _compare(operator.ge),
    "<": _compare(operator.lt),
    "lt": _compare(operator.lt),
    "<=": _compare(operator.le),
    "le": _compare(operator.le),
    "==": _velocity_eq,
    "eq": _velocity_eq,
    "!=": lambda a, b: not _velocity_eq(a, b),
    "ne": lambda a, b: not _velocity_eq(a, b),
    "%": _java_mod,
    "||": lambda a, b: truthy(a) or truthy(b),
    "&&": lambda a, b: truthy(a) and truthy(b),
    "or": lambda a, b: truthy(a) or truthy(b),
    "and": lambda a, b: truthy(a) and truthy(b),
    "+": _java_add,
    "-": _numeric(operator.sub),
    "*": _numeric(operator.mul),
    "/": _java_div,
}
