"""``$util`` and ``$input`` of API Gateway mapping templates, for the VTL twin (``$context`` is
backend/local/api_context.py)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from backend.local.vtl import VtlError
from backend.local.vtl_java import velocity_str


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
