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

The corrections live in ``vtl_engine`` (the airspeed patches) and ``vtl_java`` (Java values, methods and
operators); ``$util`` and ``$input`` in ``vtl_objects``. This module compiles and renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.local.vtl_engine import load_engine

__all__ = ["VelocityTemplate", "VtlError", "render"]


class VtlError(RuntimeError):
    """A template failed to parse or to render (API Gateway answers 500 for this)."""


_ENGINE = load_engine()


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
