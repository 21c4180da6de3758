"""Velocity (VTL) as API Gateway renders it: airspeed, corrected to Velocity 1.7, plus ``$input``/``$util``.

API Gateway renders mapping templates with Apache Velocity 1.7 and Java objects behind ``$input``,
``$util`` and ``$context``. airspeed parses the same language but behaves like Python in places where a
template can notice, so this module runs a *private copy* of airspeed (other users of the package in the
process are unaffected) with these corrections:

- String literals process no backslash escapes (``"\\\\'"`` is the two characters ``\\\\'``... i.e. the
  Java regex *backslash, quote*); only doubled quotes (``""``/``''``) and ``\\uXXXX`` are unescaped, as in
  Velocity 1.7. Strings without ``$`` or ``#`` are constants.
- ``$a.b`` is a property (a map's ``get("b")``), ``$a.b()`` a Java method: strings, lists, maps, numbers
  and booleans get the Java methods templates use (``replaceAll`` with Java regex and ``$1`` replacement,
  ``contains``, ``keySet``, ``size``, ``matches`` as a full match, ``split`` ...). An unknown method or a
  null result renders the reference's text, as Velocity does.
- Integer arithmetic is Java's: ``/`` truncates toward zero, ``%`` takes the dividend's sign, division
  by zero is null; ``+`` concatenates when either side is a string.
- Truthiness is Velocity 1.7's (only null and ``false`` are false; ``""`` and ``0`` are true); ``==``
  compares numbers numerically and other types of different classes by their string forms.
- ``#set`` with a null right-hand side leaves the variable as it was (Velocity 1.7's default).
- ``#foreach`` over a map iterates its values; values render as Java would (``true``, ``{k=v}``).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus, unquote_plus

__all__ = [
    "UTIL",
    "RequestParams",
    "Util",
    "VelocityTemplate",
    "VtlError",
    "VtlInput",
    "escape_javascript",
    "render",
    "velocity_str",
]


class VtlError(RuntimeError):
    """A template failed to parse or to render (API Gateway answers 500 for this)."""


# ------------------------------------------------------------------------------------------ values
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


def _truthy(value: Any) -> bool:
    """Velocity 1.7: null and false are false, everything else (even "" and 0) is true."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    return True


def _is_number(value: Any) -> bool:
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
    "equals": lambda n, x: _is_number(x) and type(n) is type(x) and n == x,
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
    if _is_number(value):
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
    if not (_is_number(a) and _is_number(b)):
        return None
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            return None  # Velocity logs the division by zero and yields null
        quotient = abs(a) // abs(b)
        return quotient if (a >= 0) == (b > 0) else -quotient
    return a / b if b != 0 else None


def _java_mod(a: Any, b: Any) -> Any:
    if not (_is_number(a) and _is_number(b)):
        return None
    if b == 0:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a - b * _java_div(a, b)
    return math.fmod(a, b)


def _java_add(a: Any, b: Any) -> Any:
    if _is_number(a) and _is_number(b):
        return a + b
    if isinstance(a, str) or isinstance(b, str):
        if a is None or b is None:
            return None
        return velocity_str(a) + velocity_str(b)
    return None


def _numeric(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if _is_number(a) and _is_number(b):
            return op(a, b)
        return None

    return apply


def _velocity_eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is type(b):
        return bool(a == b)
    # Velocity 1.7 compares objects of different classes by their toString().
    return velocity_str(a) == velocity_str(b)


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if _is_number(a) and _is_number(b):
            return op(a, b)
        if isinstance(a, str) and isinstance(b, str):
            return op(a, b)
        return False

    return apply


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
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
    "||": lambda a, b: _truthy(a) or _truthy(b),
    "&&": lambda a, b: _truthy(a) and _truthy(b),
    "or": lambda a, b: _truthy(a) or _truthy(b),
    "and": lambda a, b: _truthy(a) and _truthy(b),
    "+": _java_add,
    "-": _numeric(operator.sub),
    "*": _numeric(operator.mul),
    "/": _java_div,
}


# ------------------------------------------------------------------------- the corrected engine
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape_literal(text: str, quote: str) -> str:
    text = text.replace(quote + quote, quote)
    return _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _load_engine() -> ModuleType:
    """A private copy of the airspeed module, patched to Velocity 1.7 semantics (see module docstring)."""
    import airspeed

    spec = importlib.util.spec_from_file_location("backend.local._velocity_engine", airspeed.__file__)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load a private copy of airspeed")
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    _patch(engine)
    return engine


def _patch(engine: Any) -> None:
    # String literals: no backslash escapes (Velocity 1.7); a backslash still keeps the next character
    # from ending the literal, as Velocity's lexer does.
    engine.StringLiteral.STRING = re.compile(r"'((?:''|[^'])*)'", re.S)

    def string_parse(self: Any) -> None:
        (raw,) = self.identity_match(self.STRING)
        self.value = _unescape_literal(raw, "'")

    engine.StringLiteral.parse = string_parse

    engine.InterpolatedStringLiteral.STRING = re.compile(r'"((?:\\.|""|[^"\\])*)"', re.S)

    def interpolated_parse(self: Any) -> None:
        (raw,) = self.identity_match(self.STRING)
        self.value = _unescape_literal(raw, '"')
        # Velocity interpolates only literals that contain a reference or a directive.
        self.block = engine.Block(self.filename, self.value, 0) if ("$" in raw or "#" in raw) else None

    def interpolated_calculate(self: Any, namespace: Any, loader: Any) -> str:
        if self.block is None:
            return str(self.value)
        output = engine.StoppableStream()
        self.block.evaluate(output, namespace, loader)
        return str(output.getvalue())

    engine.InterpolatedStringLiteral.parse = interpolated_parse
    engine.InterpolatedStringLiteral.calculate = interpolated_calculate

    # Properties and Java methods.
    def name_or_call(self: Any, current_object: Any, loader: Any, top_namespace: Any) -> Any:
        if isinstance(current_object, engine.LocalNamespace):
            try:
                result = current_object[self.name]
            except KeyError:
                result = None
            if isinstance(result, engine._FunctionDefinition):
                params = self.parameters.calculate(top_namespace, loader) if self.parameters else []
                stream = engine.StoppableStream()
                result.execute_function(stream, top_namespace, params, loader)
                return stream.getvalue()
            if result is None or self.parameters is not None:
                return None
        elif self.parameters is not None:
            return invoke_method(current_object, self.name, self.parameters.calculate(top_namespace, loader))
        else:
            result = get_property(current_object, self.name)
        if self.index is not None and result is not None:
            index = self.index.calculate(top_namespace, loader)
            try:
                result = result[index]
            except (KeyError, IndexError, TypeError):
                result = None
        return result

    engine.NameOrCall.calculate = name_or_call

    def reference_evaluate(self: Any, stream: Any, namespace: Any, loader: Any) -> None:
        value = self.expression.calculate(namespace, loader) if self.expression is not None else None
        if value is None:
            if self.alternate is not None:
                value = self.alternate.calculate(namespace, loader)
            elif self.silent and self.expression is not None:
                value = ""
            else:
                value = self.my_text()  # Velocity prints an unresolved reference as written
        stream.write(velocity_str(value))

    engine.FormalReference.evaluate_raw = reference_evaluate

    engine.BinaryOperator.OPERATORS = _OPERATORS
    engine.UnaryOperatorValue.OPERATORS = {"!": lambda v: not _truthy(v), "not": lambda v: not _truthy(v)}

    def if_evaluate(self: Any, stream: Any, namespace: Any, loader: Any) -> None:
        if _truthy(self.condition.calculate(namespace, loader)):
            self.block.evaluate(stream, namespace, loader)
            return
        for elseif in self.elseifs:
            if _truthy(elseif.calculate(namespace, loader)):
                elseif.evaluate(stream, namespace, loader)
                return
        self.else_block.evaluate(stream, namespace, loader)

    engine.IfDirective.evaluate_raw = if_evaluate

    def set_evaluate(self: Any, stream: Any, namespace: Any, loader: Any) -> None:
        value = self.value.calculate(namespace, loader)
        if value is None:
            return  # Velocity 1.7 (directive.set.null.allowed=false): the variable keeps its value
        if len(self.terms) == 1:
            namespace.set_inherited(self.terms[0], value)
            return
        target = namespace[self.terms[0]]
        for term in self.terms[1:-1]:
            target = get_property(target, term)
        if not isinstance(target, dict):
            raise TypeError(f"cannot #set a property of {type(target).__name__}")
        target[self.terms[-1]] = value

    engine.SetDirective.evaluate_raw = set_evaluate

    def foreach_evaluate(self: Any, stream: Any, namespace: Any, loader: Any) -> None:
        iterable = self.value.calculate(namespace, loader)
        if iterable is None or isinstance(iterable, str | int | float | bool):
            return  # Velocity skips a non-iterable value
        items = list(iterable.values()) if isinstance(iterable, Mapping) else list(iterable)
        length = len(items)
        for counter, item in enumerate(items, start=1):
            local = engine.LocalNamespace(namespace)
            local["velocityCount"] = counter
            local["velocityHasNext"] = counter < length
            local["foreach"] = {
                "count": counter,
                "index": counter - 1,
                "hasNext": counter < length,
                "first": counter == 1,
                "last": counter == length,
            }
            local[self.loop_var_name] = item
            self.block.evaluate(stream, local, loader)

    engine.ForeachDirective.evaluate_raw = foreach_evaluate


_ENGINE = _load_engine()


class VelocityTemplate:
    """A template compiled once, rendered many times."""

    def __init__(self, source: str, name: str = "<template>") -> None:
        self.source = source
        self.name = name
        try:
            self._template = _ENGINE.Template(source, filename=name)
            self._template.ensure_compiled()
        except _ENGINE.TemplateError as error:
            raise VtlError(f"{name}: {error}") from error

    def render(self, namespace: Mapping[str, Any]) -> str:
        try:
            return str(self._template.merge(dict(namespace)))
        except _ENGINE.TemplateError as error:
            raise VtlError(f"{self.name}: {error}") from error

    def __repr__(self) -> str:
        return f"VelocityTemplate({self.name!r})"


def render(source: str, namespace: Mapping[str, Any]) -> str:
    """Compile and render in one go (tests; the server compiles once)."""
    return VelocityTemplate(source).render(namespace)


# ---------------------------------------------------------------------------------------- $util
def _build_escape_table() -> dict[int, str]:
    table = {c: f"\\u{c:04X}" for c in range(32)}
    table.update({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"})
    table.update({ord("'"): "\\'", ord('"'): '\\"', ord("\\"): "\\\\", ord("/"): "\\/"})
    return table


_ESCAPE_TABLE = _build_escape_table()
_NON_ASCII = re.compile("[^\x00-\x7f]")


def _escape_non_ascii(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # Java escapes UTF-16 code units: a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
    return f"\\u{code:04X}"


def escape_javascript(value: Any) -> str | None:
    """``$util.escapeJavaScript``: Apache Commons Lang's escapeJavaScript, as API Gateway uses it.

    ``'`` becomes ``\\'`` (not valid JSON: templates undo it with ``.replaceAll("\\\\'", "'")``), ``"``,
    ``\\`` and ``/`` are backslash-escaped, control characters and everything above 0x7f become
    ``\\uXXXX`` (upper-case hex, UTF-16 code units). ``$`` and ``#`` pass unchanged.
    """
    if value is None:
        return None
    text = velocity_str(value).translate(_ESCAPE_TABLE)
    return _NON_ASCII.sub(_escape_non_ascii, text)


class Util:
    """``$util`` of API Gateway mapping templates."""

    def escapeJavaScript(self, value: Any) -> str | None:
        return escape_javascript(value)

    def parseJson(self, text: str) -> Any:
        return json.loads(text)

    def urlEncode(self, text: str) -> str:
        # java.net.URLEncoder: letters, digits and . - * _ stay; space becomes +; ~ is encoded.
        return quote_plus(text, safe="*").replace("~", "%7E")

    def urlDecode(self, text: str) -> str:
        return unquote_plus(text)

    def base64Encode(self, text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    def base64Decode(self, text: str) -> str:
        return base64.b64decode(text).decode("utf-8")


# --------------------------------------------------------------------------------------- $input
@dataclass(frozen=True)
class RequestParams:
    """The method request's parameters, as ``$input.params()`` shows them."""

    path: Mapping[str, str] = field(default_factory=dict)
    querystring: Mapping[str, str] = field(default_factory=dict)
    header: Mapping[str, str] = field(default_factory=dict)

    def find(self, name: str) -> str | None:
        """Path, then query string, then header (case-insensitive), as API Gateway searches."""
        if name in self.path:
            return self.path[name]
        if name in self.querystring:
            return self.querystring[name]
        lowered = name.lower()
        for key, value in self.header.items():
            if key.lower() == lowered:
                return value
        return None


_PATH_TOKEN = re.compile(r"""\.\*|\.([^.\[\]]+)|\[\s*(?:'([^']*)'|"([^"]*)"|(-?\d+)|(\*))\s*\]""")


def select_json_path(document: Any, path: str) -> Any:
    """Evaluate the JSONPath subset templates use: ``$``, ``.name``, ``['name']``, ``[n]``, ``[*]``/``.*``.

    A path that selects nothing gives None.
    """
    path = path.strip()
    if not path.startswith("$"):
        raise VtlError(f"unsupported JSONPath {path!r}: it must start with $")
    if ".." in path:
        raise VtlError(f"unsupported JSONPath {path!r}: deep scan (..) is not implemented")
    current: Any = document
    position = 1
    wildcard = False
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None:
            raise VtlError(f"unsupported JSONPath {path!r} at {path[position:]!r}")
        position = match.end()
        name = match.group(1) or match.group(2) or match.group(3)
        if match.group(0) == ".*" or match.group(5):
            values = list(current.values()) if isinstance(current, Mapping) else current
            current = list(values) if isinstance(values, list) else None
            wildcard = True
        elif match.group(4) is not None:
            index = int(match.group(4))
            current = (
                current[index]
                if isinstance(current, list) and -len(current) <= index < len(current)
                else None
            )
        elif name is not None:
            if wildcard and isinstance(current, list):
                current = [item.get(name) for item in current if isinstance(item, Mapping) and name in item]
            else:
                current = current.get(name) if isinstance(current, Mapping) else None
        if current is None:
            return None
    return current


_UNPARSED = object()


class VtlInput:
    """``$input``: the payload (the method request's body, or the integration's response) and params."""

    def __init__(self, body: str, params: RequestParams | None = None) -> None:
        self.body = body
        self._params = params or RequestParams()
        self._parsed: Any = _UNPARSED

    def _document(self) -> Any:
        if self._parsed is _UNPARSED:
            try:
                self._parsed = json.loads(self.body) if self.body.strip() else None
            except ValueError:
                self._parsed = None
        return self._parsed

    def path(self, path: str) -> Any:
        """The value at a JSONPath as a map, list, string, number or boolean (None if absent)."""
        value = select_json_path(self._document(), path)
        # A fresh copy: a template may modify what it got (put/add) without changing the payload.
        return json.loads(json.dumps(value)) if isinstance(value, dict | list) else value

    def json(self, path: str) -> str:
        """The value at a JSONPath as JSON text ("" if absent)."""
        value = select_json_path(self._document(), path)
        if value is None:
            return ""
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def params(self, name: str | None = None) -> Any:
        if name is None:
            return {
                "path": dict(self._params.path),
                "querystring": dict(self._params.querystring),
                "header": dict(self._params.header),
            }
        value = self._params.find(name)
        return "" if value is None else value


UTIL = Util()
