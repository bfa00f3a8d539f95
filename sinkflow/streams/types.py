"""Timeplus column types and their Arrow representation.

A type is written as Timeplus writes it (``int32``, ``decimal(10, 2)``, ``datetime64(3, 'UTC')``,
``array(string)``, ``nullable(float64)``); :func:`parse_type` turns it into a :class:`DataType`
that knows its canonical spelling and its Arrow type. Nothing here knows about SQL or storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

from sinkflow.errors import InvalidInput

_SIMPLE: dict[str, pa.DataType] = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "date": pa.date32(),
    # uuid is kept as its canonical text so DuckDB and every sink read it without an extension type.
    "uuid": pa.string(),
}

# Names users write that mean one of the canonical types above (ClickHouse/Timeplus spellings).
_ALIASES: dict[str, str] = {
    "integer": "int32",
    "int": "int32",
    "bigint": "int64",
    "smallint": "int16",
    "tinyint": "int8",
    "float": "float32",
    "double": "float64",
    "boolean": "bool",
    "varchar": "string",
    "text": "string",
}

_TIME_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}
DEFAULT_TZ = "UTC"


@dataclass(frozen=True)
class DataType:
    """A Timeplus type: ``name`` is its canonical spelling, ``arrow`` its Arrow type."""

    name: str
    arrow: pa.DataType
    nullable: bool = False

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Column:
    """A named, typed column of a stream or a query result.

    ``default`` is the column's DEFAULT expression as the user wrote it (Timeplus SQL), evaluated
    at ingest for rows that do not give the column; with ``alias`` it is the column's ALIAS
    expression, computed for every row (a value for it is refused). ``comment`` is free text."""

    name: str
    type: DataType
    default: str | None = field(default=None, compare=False)
    alias: bool = field(default=False, compare=False)
    comment: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, object]:
        """The column as stream.json and the REST API hold it (optional keys only when set)."""
        out: dict[str, object] = {"name": self.name, "type": self.type.name}
        if self.default is not None:
            out["default"] = self.default
        if self.alias:
            out["alias"] = True
        if self.comment:
            out["comment"] = self.comment
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Column:
        """The column :meth:`to_dict` described. Raises :class:`InvalidInput` for an unknown type."""
        default = data.get("default")
        return cls(str(data["name"]), parse_type(str(data["type"])), None if default is None else str(default),
                   bool(data.get("alias", False)), str(data.get("comment", "")))

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, self.type.arrow, nullable=self.type.nullable)


class _Parser:
    """A small recursive-descent parser for type expressions."""

    _TOKEN = re.compile(r"\s*(?:(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>\d+)|(?P<str>'[^']*')|(?P<sym>[(),]))")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = self._TOKEN.match(text, pos)
            if not m:
                raise InvalidInput(f"unknown type '{text}': unexpected '{text[pos:].strip()}'")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind:
            raise InvalidInput(f"unknown type '{self.text}'")
        self.i += 1
        return tok[1]

    def accept(self, sym: str) -> bool:
        tok = self.peek()
        if tok == ("sym", sym):
            self.i += 1
            return True
        return False

    def args(self) -> list[str]:
        """Numeric or quoted-string arguments inside ``( … )``, if any."""
        out: list[str] = []
        if not self.accept("("):
            return out
        while True:
            tok = self.peek()
            if tok is None or tok[0] not in ("num", "str"):
                raise InvalidInput(f"unknown type '{self.text}': expected a number or a quoted time zone")
            out.append(tok[1].strip("'"))
            self.i += 1
            if self.accept(")"):
                return out
            if not self.accept(","):
                raise InvalidInput(f"unknown type '{self.text}': expected ',' or ')'")

    def parse(self) -> DataType:
        raw = self.take("ident")
        name = _ALIASES.get(raw.lower(), raw.lower())
        if name == "nullable":
            inner = self._inner()
            return DataType(f"nullable({inner.name})", inner.arrow, nullable=True)
        if name == "array":
            inner = self._inner()
            return DataType(f"array({inner.name})", pa.list_(pa.field("item", inner.arrow, nullable=inner.nullable)))
        if name == "low_cardinality" or name == "lowcardinality":
            return self._inner()
        if name == "decimal":
            args = self.args()
            precision, scale = (int(args[0]), int(args[1]) if len(args) > 1 else 0) if args else (38, 9)
            if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                raise InvalidInput(f"type '{self.text}': decimal precision must be 1..38 and scale 0..precision")
            return DataType(f"decimal({precision}, {scale})", pa.decimal128(precision, scale))
        if name == "datetime":
            args = self.args()
            tz = args[0] if args else DEFAULT_TZ
            return DataType(f"datetime('{tz}')" if args else "datetime", pa.timestamp("s", tz=tz))
        if name == "datetime64":
            args = self.args()
            precision = int(args[0]) if args else 3
            if precision not in _TIME_UNITS:
                raise InvalidInput(f"type '{self.text}': datetime64 precision must be one of 0, 3, 6, 9")
            tz = args[1] if len(args) > 1 else DEFAULT_TZ
            spelled = f"datetime64({precision}, '{tz}')" if len(args) > 1 else f"datetime64({precision})"
            return DataType(spelled, pa.timestamp(_TIME_UNITS[precision], tz=tz))
        if name in _SIMPLE:
            return DataType(name, _SIMPLE[name])
        raise InvalidInput(f"unknown type '{self.text}'")

    def _inner(self) -> DataType:
        if not self.accept("("):
            raise InvalidInput(f"unknown type '{self.text}': expected '('")
        inner = self.parse()
        if not self.accept(")"):
            raise InvalidInput(f"unknown type '{self.text}': expected ')'")
        return inner


def parse_type(text: str) -> DataType:
    """Parse a Timeplus type expression.

    Raises :class:`InvalidInput` naming the text when it is not a supported type.
    """
    parser = _Parser(text)
    result = parser.parse()
    if parser.peek() is not None:
        raise InvalidInput(f"unknown type '{text}'")
    return result


# The event-time column every stream has.
TP_TIME = "_tp_time"
TP_TIME_TYPE = parse_type("datetime64(3, 'UTC')")


def from_arrow(arrow_type: pa.DataType, nullable: bool = True) -> DataType:
    """The Timeplus type that best describes an Arrow type (for query output schemas).

    Raises :class:`InvalidInput` when the Arrow type has no Timeplus counterpart.
    """
    for name, simple in _SIMPLE.items():
        if name != "uuid" and arrow_type == simple:
            return DataType(name, simple, nullable)
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return DataType("string", pa.string(), nullable)
    if pa.types.is_decimal(arrow_type):
        return DataType(f"decimal({arrow_type.precision}, {arrow_type.scale})", arrow_type, nullable)
    if pa.types.is_timestamp(arrow_type):
        precision = {"s": 0, "ms": 3, "us": 6, "ns": 9}[arrow_type.unit]
        tz = arrow_type.tz or DEFAULT_TZ
        name = "datetime" if precision == 0 else f"datetime64({precision}, '{tz}')"
        return DataType(name, pa.timestamp(arrow_type.unit, tz=tz), nullable)
    if pa.types.is_date(arrow_type):
        return DataType("date", pa.date32(), nullable)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = from_arrow(arrow_type.value_type)
        return DataType(f"array({inner.name})", pa.list_(inner.arrow), nullable)
    if pa.types.is_null(arrow_type):
        return DataType("nullable(string)", pa.string(), True)
    raise InvalidInput(f"the result type {arrow_type} has no Timeplus counterpart")
