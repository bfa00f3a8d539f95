"""The ``{{ .col }}`` template language of message bodies, subjects and payloads.

A small, strict subset of Go's text/template, as Timeplus documents it:

* ``{{.col}}`` / ``{{ .col }}`` — the column's value as Timeplus prints it
  (:func:`sinkflow.sinks.encode.text`: ``2022-01-23 10:00:00.123``, ``true``, ``50``);
* ``{{ json .col }}`` / ``{{ .col | json }}`` — the value JSON-encoded (a quoted, escaped
  string; numbers, booleans and ``null`` as JSON), for building JSON bodies safely;
* ``{{ json . }}`` / ``{{ . | json }}`` — the whole row as one JSON object.

Every other action (``if``, ``range``, ``printf``, trim markers ``{{-``, comments, nested
fields, an unclosed ``{{``) is rejected by :meth:`Template.parse` with a
:class:`TemplateError` naming the construct and its line and column, so a bad template is
refused when the sink is created, never at send time. Text outside actions is copied as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

from sinkflow.errors import ConfigError, InvalidInput, Position
from sinkflow.sinks.encode import json_document, text

#: Go identifiers: a letter or underscore, then letters, digits, underscores (unicode allowed).
_IDENT = r"[^\W\d]\w*"
_VALUE = re.compile(rf"\.({_IDENT})")
_JSON_COL = re.compile(rf"json\s+\.({_IDENT})|\.({_IDENT})\s*\|\s*json")
_JSON_ROW = re.compile(r"json\s+\.|\.\s*\|\s*json")
_OPEN, _CLOSE = "{{", "}}"
_ALLOWED = "{{ .col }}, {{ json .col }}, {{ .col | json }}, {{ json . }}"

#: Turns a row into the text of one action.
Renderer = Callable[[dict[str, Any]], str]


class TemplateError(InvalidInput):
    """A template uses a construct outside the supported subset; the message names it and where."""


def json_value(value: Any) -> str:
    """``value`` JSON-encoded exactly as it appears inside a row's JSON document."""
    # Encoding a one-key object and cutting off ``{"v":`` and ``}`` reuses the one JSON
    # encoding of encode.py (datetimes, decimals, non-finite floats) instead of repeating it.
    return json_document({"v": value})[5:-1].decode()


def _value_renderer(column: str) -> Renderer:
    return lambda row: text(row.get(column))


def _json_renderer(column: str) -> Renderer:
    return lambda row: json_value(row.get(column))


def _row_renderer(row: dict[str, Any]) -> str:
    return json_document(row).decode()


def _position(source: str, offset: int) -> Position:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return Position(line, column)


def _error(source: str, offset: int, what: str, hint: str = "") -> TemplateError:
    pos = _position(source, offset)
    return TemplateError(f"template: {what} at line {pos.line}, column {pos.column}{hint}", position=pos)


class Template:
    """A parsed template: compile once with :meth:`parse`, then :meth:`render` per row."""

    __slots__ = ("source", "columns", "_head", "_steps")

    def __init__(
        self, source: str, columns: frozenset[str], head: str, steps: tuple[tuple[Renderer, str], ...]
    ) -> None:
        self.source = source
        #: Every column the template names (``{{ json . }}`` names none in particular).
        self.columns = columns
        self._head = head
        self._steps = steps

    @classmethod
    def parse(cls, source: str) -> Template:
        """Compile ``source``. Raises :class:`TemplateError` for anything outside the subset."""
        head = ""
        steps: list[tuple[Renderer, str]] = []
        columns: set[str] = set()
        pending: Renderer | None = None
        pos = 0
        while True:
            start = source.find(_OPEN, pos)
            literal = source[pos:] if start < 0 else source[pos:start]
            if pending is None:
                head = literal
            else:
                steps.append((pending, literal))
            if start < 0:
                break
            end = source.find(_CLOSE, start + len(_OPEN))
            if end < 0:
                raise _error(source, start, f"'{{{{' is not closed by '}}}}' in {source[start:start + 30]!r}")
            action = source[start + len(_OPEN) : end]
            pending = cls._action(action, columns)
            if pending is None:
                construct = source[start : end + len(_CLOSE)]
                raise _error(source, start, f"unsupported construct '{construct}'", f" (allowed: {_ALLOWED})")
            pos = end + len(_CLOSE)
        return cls(source, frozenset(columns), head, tuple(steps))

    @staticmethod
    def _action(action: str, columns: set[str]) -> Renderer | None:
        """The renderer of one ``{{ … }}`` action's inside, or None when it is not supported."""
        body = action.strip()
        if m := _VALUE.fullmatch(body):
            columns.add(m.group(1))
            return _value_renderer(m.group(1))
        if m := _JSON_COL.fullmatch(body):
            column = m.group(1) or m.group(2)
            columns.add(column)
            return _json_renderer(column)
        if _JSON_ROW.fullmatch(body):
            return _row_renderer
        return None

    def renders_json(self) -> bool:
        """True when the text around the actions is a JSON object or array (every action standing
        for one JSON value or part of a string), such as ``{"text": "{{ .cid }} at {{ .speed }}"}``,
        or the template is ``{{ json . }}``: what it renders is meant to be sent as JSON."""
        skeleton = self._head + "".join("0" + literal for _renderer, literal in self._steps)
        if skeleton.strip() == "0" and self._steps[0][0] is _row_renderer:
            return True  # {{ json . }}: the row as JSON
        if not skeleton.strip().startswith(("{", "[")):
            return False
        try:
            json.loads(skeleton)
        except ValueError:
            return False
        return True

    def render(self, row: dict[str, Any]) -> str:
        """The text for one row (a dict keyed by column name). A missing column renders empty."""
        out = [self._head]
        for renderer, literal in self._steps:
            out.append(renderer(row))
            out.append(literal)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _check_template(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        Template.parse(value)
    except TemplateError as exc:
        raise ValueError(exc.message) from None
    return value


#: A template property: validated at creation (the error names the construct); empty or blank
#: means "none". Unlike other text properties its surrounding whitespace is kept: it is content.
TemplateText = Annotated[str | None, StringConstraints(strip_whitespace=False), AfterValidator(_check_template)]


def check_columns(template_text: str, prop_name: str, columns: Iterable[str]) -> None:
    """Check that ``template_text`` parses and names only ``columns``.

    Raises :class:`ConfigError` for ``prop_name``: the parse error, or
    ``unknown column 'x' (columns: a, b)`` for the first unknown column (in text order).
    """
    try:
        template = Template.parse(template_text)
    except TemplateError as exc:
        raise ConfigError(prop_name, exc.message) from None
    known = list(columns)
    unknown = template.columns.difference(known)
    if unknown:
        first = min(unknown, key=lambda name: template_text.find("." + name))
        raise ConfigError(prop_name, f"unknown column '{first}' (columns: {', '.join(known)})")
