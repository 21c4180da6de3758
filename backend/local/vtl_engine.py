"""The VTL twin's airspeed patches: a private copy of airspeed corrected to Velocity 1.7 (see vtl.py).

Other users of the airspeed package in the process are unaffected: the patches apply to a copy of the
module loaded under another name. ``airspeed`` is pinned exactly in pyproject.toml because these patches
replace its internals.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from backend.local.vtl_java import OPERATORS, get_property, invoke_method, truthy, velocity_str

_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape_literal(text: str, quote: str) -> str:
    text = text.replace(quote + quote, quote)
    return _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def load_engine() -> ModuleType:
    """A private copy of the airspeed module, patched to Velocity 1.7 semantics (see backend/local/vtl.py)."""
    import airspeed

    spec = importlib.util.spec_from_file_location("backend.local._velocity_engine", airspeed.__file__)
    if spec is None or spec.loader is None:
        raise ImportError("cannot load a private copy of airspeed")
    engine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engine)
    _patch_string_literals(engine)
    _patch_references(engine)
    _patch_directives(engine)
    _patch_else(engine)
    return engine


def _patch_string_literals(engine: Any) -> None:
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


def _patch_references(engine: Any) -> None:
    """Properties, Java methods and how a reference prints; the operators on the values they yield."""

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

    engine.BinaryOperator.OPERATORS = OPERATORS
    engine.UnaryOperatorValue.OPERATORS = {"!": lambda v: not truthy(v), "not": lambda v: not truthy(v)}


def _patch_directives(engine: Any) -> None:
    """``#if``, ``#set`` and ``#foreach`` with Velocity 1.7's truthiness, null handling and map iteration."""

    def if_evaluate(self: Any, stream: Any, namespace: Any, loader: Any) -> None:
        if truthy(self.condition.calculate(namespace, loader)):
            self.block.evaluate(stream, namespace, loader)
            return
        for elseif in self.elseifs:
            if truthy(elseif.calculate(namespace, loader)):
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


def _patch_else(engine: Any) -> None:
    """Velocity 1.7's lexer takes the rest of an ``#else`` line, its newline included, as part of the
    directive (ELSE_DIRECTIVE in Parser.jjt), as it does for ``#if`` and ``#end``: no blank line."""

    def else_parse(self: Any) -> None:
        self.identity_match(self.START)
        self.optional_match(engine.WHITESPACE_TO_END_OF_LINE)
        self.block = self.require_next_element(engine.Block, "block")
        self.evaluate = self.block.evaluate

    engine.ElseBlock.parse = else_parse
