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
    # As text too: IP addresses and JSON documents (not validated at ingest: see docs/streams.md).
    "ipv4": pa.string(),
    "ipv6": pa.string(),
    "json": pa.string(),
    "date32": pa.date32(),
}
# Integers wider than 64 bits, held as 38-digit decimals (Arrow has no wider integer): values
# beyond 38 digits do not fit (see docs/sql.md).
_WIDE_INTEGERS = frozenset({"int128", "uint128", "int256", "uint256"})
# Types stored as another one's Arrow type, keeping their own spelling.
_TEXT_LIKE = frozenset({"uuid", "ipv4", "ipv6", "json"})
# decimalN(scale): the precision each width holds.
_DECIMAL_WIDTHS = {"decimal32": 9, "decimal64": 18, "decimal128": 38}

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
    "datetime32": "datetime",
    "lowcardinality": "low_cardinality",
    "fixedstring": "fixed_string",
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

    _TOKEN = re.compile(r"\s*(?:(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>-?\d+)|(?P<str>'(?:[^'\\]|\\.)*')"
                        r"|(?P<sym>[(),=]))")

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
        if name == "low_cardinality":
            inner = self._inner()
            # Only a storage hint in Timeplus: the values are the inner type's.
            return DataType(f"low_cardinality({inner.name})", inner.arrow, inner.nullable)
        if name == "decimal256":
            raise InvalidInput(f"type '{self.text}': decimal256 is not supported (decimals hold up to 38 digits: "
                               "use decimal128 or decimal(38, s))")
        if name in ("decimal", *_DECIMAL_WIDTHS):
            args = self.args()
            if name in _DECIMAL_WIDTHS:
                if len(args) != 1:
                    raise InvalidInput(f"type '{self.text}': {name} takes one argument, the scale")
                precision, scale = _DECIMAL_WIDTHS[name], int(args[0])
            else:
                precision, scale = (int(args[0]), int(args[1]) if len(args) > 1 else 0) if args else (38, 9)
            if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                raise InvalidInput(f"type '{self.text}': decimal precision must be 1..38 and scale 0..precision "
                                   "(wider decimals such as decimal256 are not supported)")
            return DataType(f"decimal({precision}, {scale})", pa.decimal128(precision, scale))
        if name == "fixed_string":
            args = self.args()
            if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
                raise InvalidInput(f"type '{self.text}': fixed_string takes a positive length")
            return DataType(f"fixed_string({args[0]})", pa.string())
        if name in ("enum", "enum8", "enum16"):
            labels = self.enum_labels()
            width = "enum16" if name == "enum16" else "enum8"
            spelled = ", ".join(f"'{label}' = {value}" for label, value in labels)
            return DataType(f"{width}({spelled})", pa.string())
        if name == "map":
            key, value = self._pair()
            return DataType(f"map({key.name}, {value.name})", pa.map_(key.arrow, value.arrow))
        if name == "tuple":
            items = self.tuple_items()
            fields = [pa.field(n or str(i + 1), t.arrow, nullable=t.nullable) for i, (n, t) in enumerate(items)]
            spelled = ", ".join(f"{n} {t.name}" if n else t.name for n, t in items)
            return DataType(f"tuple({spelled})", pa.struct(fields))
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
            if name == "string" or pa.types.is_integer(_SIMPLE[name]) or pa.types.is_floating(_SIMPLE[name]):
                self.args()  # a display width, as in INT(11), FLOAT(12) or VARCHAR(255): no effect
            return DataType(name, _SIMPLE[name])
        if name in _WIDE_INTEGERS:
            self.args()
            return DataType(name, pa.decimal128(38, 0))
        raise InvalidInput(f"unknown type '{self.text}'")

    def enum_labels(self) -> list[tuple[str, int]]:
        """``('a' = 1, 'b' = 2)``: the labels and their numbers."""
        labels: list[tuple[str, int]] = []
        if not self.accept("("):
            self.i = len(self.tokens)
        while True:
            token = self.peek()
            if token is None or token[0] != "str":
                raise InvalidInput(f"type '{self.text}': an enum lists its values, such as enum8('a' = 1, 'b' = 2)")
            self.i += 1
            label = token[1][1:-1]
            if not self.accept("="):
                raise InvalidInput(f"type '{self.text}': expected '=' and a number after '{label}'")
            labels.append((label, int(self.take("num"))))
            if self.accept(")"):
                return labels
            if not self.accept(","):
                raise InvalidInput(f"type '{self.text}': expected ',' or ')'")

    def _pair(self) -> tuple[DataType, DataType]:
        if not self.accept("("):
            raise InvalidInput(f"unknown type '{self.text}': expected '('")
        key = self.parse()
        if not self.accept(","):
            raise InvalidInput(f"type '{self.text}': map takes a key type and a value type")
        value = self.parse()
        if not self.accept(")"):
            raise InvalidInput(f"unknown type '{self.text}': expected ')'")
        return key, value

    def tuple_items(self) -> list[tuple[str, DataType]]:
        """``(t1, t2)`` or ``(name1 t1, name2 t2)``: each item's name ('' when unnamed) and type."""
        if not self.accept("("):
            raise InvalidInput(f"unknown type '{self.text}': expected '('")
        items: list[tuple[str, DataType]] = []
        while True:
            token, following = self.peek(), self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            name = ""
            if token is not None and token[0] == "ident" and following is not None and following[0] == "ident":
                name = token[1]
                self.i += 1
            items.append((name, self.parse()))
            if self.accept(")"):
                return items
            if not self.accept(","):
                raise InvalidInput(f"type '{self.text}': expected ',' or ')'")

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
        if name not in _TEXT_LIKE and name != "date32" and arrow_type == simple:
            return DataType(name, simple, nullable)
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return DataType("string", pa.string(), nullable)
    if pa.types.is_decimal(arrow_type):
        return DataType(f"decimal({arrow_type.precision}, {arrow_type.scale})", arrow_type, nullable)
    if pa.types.is_timestamp(arrow_type):
        precision = {"s": 0, "ms": 3, "us": 6, "ns": 9}[arrow_type.unit]
        tz = arrow_type.tz or DEFAULT_TZ
        if precision == 0:
            name = "datetime" if tz == DEFAULT_TZ else f"datetime('{tz}')"
        else:
            name = f"datetime64({precision}, '{tz}')"
        return DataType(name, pa.timestamp(arrow_type.unit, tz=tz), nullable)
    if pa.types.is_date(arrow_type):
        return DataType("date", pa.date32(), nullable)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = from_arrow(arrow_type.value_type)
        return DataType(f"array({inner.name})", pa.list_(inner.arrow), nullable)
    if pa.types.is_map(arrow_type):
        key, item = from_arrow(arrow_type.key_type, False), from_arrow(arrow_type.item_type)
        return DataType(f"map({key.name}, {item.name})", arrow_type, nullable)
    if pa.types.is_struct(arrow_type):
        items = [from_arrow(f.type, f.nullable) for f in arrow_type]
        # Unnamed tuple items are called 1, 2, … (Timeplus's tuple.1).
        named = [f.name for f in arrow_type] != [str(i + 1) for i in range(len(items))]
        spelled = ", ".join(f"{f.name} {t.name}" if named else t.name for f, t in zip(arrow_type, items, strict=True))
        return DataType(f"tuple({spelled})", arrow_type, nullable)
    if pa.types.is_null(arrow_type):
        return DataType("nullable(string)", pa.string(), True)
    raise InvalidInput(f"the result type {arrow_type} has no Timeplus counterpart")
