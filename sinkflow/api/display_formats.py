"""Result rows in Proton's display and document formats, as ``proton-client`` prints them.

The formats of a ``FORMAT`` clause beyond the TabSeparated and CSV families of
:mod:`sinkflow.api.text_formats` (which lists every name and dispatches here):

* ``JSONEachRow`` — one object per row; ``JSONCompactEachRow`` — one array per row. As
  ClickHouse writes them by default: 64-bit integers quoted, other numbers bare, a non-finite
  float ``null``, decimals bare, text and times quoted, ``/`` escaped as ``\\/``, tuples as arrays,
  maps as objects.
* ``Values`` — ``(1,'a'),(2,'b')``: values as SQL literals, rows separated by commas.
* ``TSKV`` — ``name=value`` pairs separated by tabs, a row per line, values escaped as in TSV.
* ``Vertical`` — ``Row N:`` and a rule, then one ``name: value`` line per column.
* ``Pretty``, ``PrettyCompact``, ``PrettySpace`` (each also ``…NoEscapes``; ``…MonoBlock``) —
  tables drawn with box characters, numbers aligned right, null as ``ᴺᵁᴸᴸ``; column names are
  bold (an ANSI escape) unless ``NoEscapes``. A table is drawn per block of rows, as Proton does:
  a bounded query's rows are one block.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from sinkflow.api.text_formats import _in_time_range, _fraction_digits, tab_separated_lines, value_text

__all__ = ["DISPLAY_FORMATS", "display_rows"]

#: Each display format's names, as written in FORMAT, → its canonical name.
DISPLAY_FORMATS = {
    name: name for name in (
        "JSONEachRow", "JSONCompactEachRow", "Values", "TSKV", "Vertical", "Pretty", "PrettyCompact", "PrettySpace",
        "PrettyNoEscapes", "PrettyCompactNoEscapes", "PrettySpaceNoEscapes", "PrettyCompactMonoBlock",
        "PrettyMonoBlock", "PrettySpaceMonoBlock")
} | {"NDJSON": "JSONEachRow", "JSONLines": "JSONEachRow"}

_NULL = "ᴺᵁᴸᴸ"
_BOLD, _PLAIN = "\x1b[1m", "\x1b[0m"


def display_rows(batch: pa.RecordBatch | pa.Table, fmt: str) -> str:
    """Every row of ``batch`` in the display format ``fmt`` (a name of :data:`DISPLAY_FORMATS`);
    nothing for no rows."""
    fmt = DISPLAY_FORMATS[fmt]
    if batch.num_rows == 0:
        return ""
    if fmt in ("JSONEachRow", "JSONCompactEachRow"):
        return _json_rows(batch, compact=fmt == "JSONCompactEachRow")
    if fmt == "TSKV":
        lines = tab_separated_lines(batch).splitlines()
        names = [name.replace("\\", "\\\\").replace("=", "\\=") for name in batch.schema.names]
        return "".join("\t".join(f"{n}={v}" for n, v in zip(names, line.split("\t"), strict=True)) + "\n"
                       for line in lines)
    cells = _cells(batch, nested=fmt == "Values")
    if fmt == "Values":
        return ",".join("(" + ",".join(row) + ")" for row in zip(*cells, strict=True))
    if fmt == "Vertical":
        return _vertical(batch.schema.names, cells)
    return _pretty(batch.schema, cells, fmt)


def _cells(batch: pa.RecordBatch | pa.Table, nested: bool) -> list[list[str | None]]:
    """Each column's values as text (None for null); ``nested`` quotes text as a literal."""
    columns: list[list[str | None]] = []
    for column in batch.columns:
        digits = _fraction_digits(column)
        values = _in_time_range(column).to_pylist()
        columns.append([value_text(v, column.type, digits, nested) if v is not None else ("NULL" if nested else None)
                        for v in values])
    return columns


def _vertical(names: list[str], cells: list[list[str | None]]) -> str:
    width = max(len(name) for name in names) + 1
    parts = []
    for number, row in enumerate(zip(*cells, strict=True), 1):
        title = f"Row {number}:"
        lines = [f"{name + ':':<{width}} {value if value is not None else _NULL}" for name, value in zip(names, row,
                                                                                                       strict=True)]
        parts.append(f"{title}\n{'─' * len(title)}\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def _right_aligned(typ: pa.DataType) -> bool:
    """Whether Proton aligns a column of this type right (numbers) in the Pretty formats."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)


def _pretty(schema: pa.Schema, cells: list[list[str | None]], fmt: str) -> str:
    escapes = "NoEscapes" not in fmt
    names = schema.names
    texts = [[value if value is not None else _NULL for value in column] for column in cells]
    widths = [max([len(name), *(len(t) for t in column)]) for name, column in zip(names, texts, strict=True)]
    right = [_right_aligned(field.type) for field in schema]

    def pad(text: str, width: int, to_right: bool, fill: str = " ", bold: bool = False) -> str:
        shown = f"{_BOLD}{text}{_PLAIN}" if bold else text
        room = fill * (width - len(text))
        return room + shown if to_right else shown + room

    rows = list(zip(*texts, strict=True))
    if fmt.startswith("PrettySpace"):
        header = " " + "   ".join(pad(n, w, r, bold=escapes) for n, w, r in zip(names, widths, right, strict=True))
        body = [" " + "   ".join(pad(v, w, r) for v, w, r in zip(row, widths, right, strict=True)) + " "
                for row in rows]
        return header + "\n\n" + "".join(line + "\n" for line in body)
    cells_line = ["│ " + " │ ".join(pad(v, w, r) for v, w, r in zip(row, widths, right, strict=True)) + " │"
                  for row in rows]
    bottom = "└─" + "─┴─".join("─" * w for w in widths) + "─┘"
    if fmt.startswith("PrettyCompact"):
        top = "┌─" + "─┬─".join(pad(n, w, r, "─", escapes) for n, w, r in zip(names, widths, right, strict=True)) + "─┐"
        return "\n".join([top, *cells_line, bottom]) + "\n"
    top = "┏━" + "━┳━".join("━" * w for w in widths) + "━┓"
    # Here the bold runs over the padding too (not so in the compact and space layouts).
    header = "┃ " + " ┃ ".join(f"{_BOLD}{pad(n, w, r)}{_PLAIN}" if escapes else pad(n, w, r)
                               for n, w, r in zip(names, widths, right, strict=True)) + " ┃"
    under = "┡━" + "━╇━".join("━" * w for w in widths) + "━┩"
    between = "├─" + "─┼─".join("─" * w for w in widths) + "─┤"
    lines = [top, header, under]
    for number, line in enumerate(cells_line):
        if number:
            lines.append(between)
        lines.append(line)
    return "\n".join([*lines, bottom]) + "\n"


def _json_rows(batch: pa.RecordBatch | pa.Table, compact: bool) -> str:
    names = batch.schema.names
    columns = [[_json_value(v, column.type) for v in _in_time_range(column).to_pylist()] for column in batch.columns]
    lines = []
    for row in zip(*columns, strict=True):
        if compact:
            lines.append("[" + ",".join(row) + "]")
        else:
            lines.append("{" + ",".join(f"{_json_text(n)}:{v}" for n, v in zip(names, row, strict=True)) + "}")
    return "".join(line + "\n" for line in lines)


def _json_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("/", "\\/")


def _json_value(value: Any, typ: pa.DataType) -> str:
    """One value as ClickHouse's JSON formats write it (see the module docstring)."""
    if value is None:
        return "null"
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if isinstance(value, bool):
        return "true" if value else "false"
    if pa.types.is_integer(typ):
        return f'"{value}"' if typ.bit_width == 64 else str(value)
    if pa.types.is_floating(typ):
        return value_text(value, typ, nested=False) if math.isfinite(value) else "null"
    if pa.types.is_decimal(typ):
        return value_text(value, typ, nested=False)
    if pa.types.is_map(typ):
        pairs = value.items() if isinstance(value, dict) else value
        return "{" + ",".join(f"{_json_text(value_text(k, typ.key_type, nested=False))}:{_json_value(v, typ.item_type)}"
                              for k, v in pairs) + "}"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return "[" + ",".join(_json_value(v, typ.value_type) for v in value) + "]"
    if pa.types.is_struct(typ):
        return "[" + ",".join(_json_value(value.get(field.name), field.type) for field in typ) + "]"
    return _json_text(value_text(value, typ, nested=False))
