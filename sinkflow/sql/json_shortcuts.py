"""Timeplus's JSON shortcuts: ``raw:a.b`` is ``json_value(raw, '$.a.b')``.

Timeplus reads ``<column>:<name>[.<name>…]`` as the JSON value at that path of the column's text
(a string: ``''`` when missing or not a scalar), and a ``::type`` after it casts that text, so
``raw:a.b::int`` is ``cast(json_value(raw, '$.a.b'), 'int')``. ``raw:a.b[*]`` is the array at
that path, its elements as JSON text (``json_extract_array``). Names may be keywords (``raw:type``)
or backquoted (``raw:`a.b`.c``, one key holding a dot); the column may be qualified (``t.raw:a``).
As in Timeplus, ``x ? raw : a`` stays a conditional.

sqlglot cannot read the shortcut, so :func:`hide` replaces each one, before parsing, by a
placeholder name exactly as long as the shortcut's text: every position sqlglot reports, and every
slice of the user's text taken by token offsets (the output column name ``raw:a.b``), stays right.
:func:`restore` then puts the ``json_value`` call in the placeholder's place in the parsed tree,
carrying the placeholder's position.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from sinkflow.errors import SqlError

__all__ = ["Shortcut", "hide", "restore"]

_NAME_TOKENS = (TokenType.VAR, TokenType.IDENTIFIER)
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Shortcut:
    """One shortcut: the column it reads (``table``, ``column``) and the keys of its path."""

    table: str
    column: str
    keys: tuple[str, ...]
    array: bool = False  # written with [*]: the array at the path

    def path(self) -> str:
        """The JSONPath of the keys, each quoted (``$."a"."b"``)."""
        return "$" + "".join('."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"' for key in self.keys)


def _is_name(token: Token) -> bool:
    # Keywords are fine as keys (raw:type, raw:date); strings and numbers are not names.
    return token.token_type in _NAME_TOKENS or (
        token.token_type not in (TokenType.STRING, TokenType.NUMBER) and token.text.replace("_", "a").isalnum()
        and not token.text[0].isdigit())


def hide(text: str) -> tuple[str, dict[str, Shortcut]]:
    """``text`` with every JSON shortcut replaced by a placeholder name of the same length, and
    the shortcut each placeholder stands for. Text that does not tokenize is returned as it is
    (the SQL parser reports it)."""
    try:
        tokens = ClickHouse().tokenize(text)
    except TokenError:
        return text, {}
    found: dict[str, Shortcut] = {}
    pieces: list[str] = []
    copied = 0
    i = 0
    while i < len(tokens):
        colon = i + 1
        if (colon + 1 < len(tokens) and tokens[colon].token_type == TokenType.COLON
                and tokens[i].token_type in _NAME_TOKENS and _is_name(tokens[colon + 1])
                and tokens[colon].start == tokens[i].end + 1):
            first = i
            table = ""
            if i >= 2 and tokens[i - 1].token_type == TokenType.DOT and tokens[i - 2].token_type in _NAME_TOKENS:
                first, table = i - 2, tokens[i - 2].text
            if first == 0 or tokens[first - 1].token_type != TokenType.PLACEHOLDER:  # not `x ? raw : a`
                keys = [tokens[colon + 1].text]
                last = colon + 1
                while (last + 2 < len(tokens) and tokens[last + 1].token_type == TokenType.DOT
                       and _is_name(tokens[last + 2])):
                    keys.append(tokens[last + 2].text)
                    last += 2
                array = [t.token_type for t in tokens[last + 1:last + 4]] == [
                    TokenType.L_BRACKET, TokenType.STAR, TokenType.R_BRACKET]
                last += 3 if array else 0
                start, end = tokens[first].start, tokens[last].end + 1
                placeholder = _placeholder(end - start, text, found)
                found[placeholder] = Shortcut(table, tokens[i].text, tuple(keys), array)
                pieces += [text[copied:start], placeholder]
                copied = end
                i = last + 1
                continue
        i += 1
    if not found:
        return text, {}
    pieces.append(text[copied:])
    return "".join(pieces), found


def _placeholder(width: int, text: str, taken: dict[str, Shortcut]) -> str:
    """A name ``width`` (at least 3) characters long, in neither ``text`` nor ``taken``."""
    for n in itertools.count():
        digits = ""
        while True:
            n, digit = divmod(n, 36)
            digits = _DIGITS[digit] + digits
            if not n:
                break
        name = ("_" + digits).ljust(width, "_")
        if len(name) > width:
            break
        if name not in taken and name not in text:
            return name
    raise SqlError("too many JSON shortcuts (raw:key) in one statement")


def restore(tree: exp.Expression, shortcuts: dict[str, Shortcut]) -> exp.Expression:
    """``tree`` with each placeholder column replaced by its ``json_value`` call (same position)."""
    if not shortcuts:
        return tree

    def put_back(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in shortcuts:
            shortcut = shortcuts[node.name]
            column = exp.column(shortcut.column, table=shortcut.table or None)
            if shortcut.array:
                # The object holding the array, key by key, then the array under the last key.
                document: exp.Expression = column
                for key in shortcut.keys[:-1]:
                    document = exp.Anonymous(this="json_extract_string", expressions=[document, exp.Literal.string(key)])
                call = exp.Anonymous(this="json_extract_array",
                                     expressions=[document, exp.Literal.string(shortcut.keys[-1])])
            else:
                call = exp.Anonymous(this="json_value", expressions=[column, exp.Literal.string(shortcut.path())])
            for part in (column, call):
                part.meta.update(node.this.meta if node.this is not None else node.meta)
            return call
        return node

    return tree.transform(put_back)
