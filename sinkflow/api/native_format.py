"""ClickHouse's ``Native`` format (the columnar block format Proton's HTTP interface speaks), for
the types sinkflow's streams hold: integers, floats, bool, string, date, datetime, datetime64 and
nullable ones.

A block is: number of columns, number of rows (LEB128), then per column its name, its type name
(LEB128-prefixed text) and its values — fixed-width little-endian numbers, or LEB128-prefixed bytes
for strings; a nullable column sends one null byte per row before its values.
"""

from __future__ import annotations

import re
from io import BytesIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.errors import InvalidInput
from sinkflow.streams.types import from_arrow

_FIXED = {
    "int8": np.dtype("<i1"), "int16": np.dtype("<i2"), "int32": np.dtype("<i4"), "int64": np.dtype("<i8"),
    "uint8": np.dtype("<u1"), "uint16": np.dtype("<u2"), "uint32": np.dtype("<u4"), "uint64": np.dtype("<u8"),
    "float32": np.dtype("<f4"), "float64": np.dtype("<f8"), "bool": np.dtype("<u1"),
    "date": np.dtype("<u2"), "date32": np.dtype("<i4"), "datetime": np.dtype("<u4"),
}
_ARROW = {
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
    "float32": pa.float32(), "float64": pa.float64(), "bool": pa.bool_(),
    "date": pa.date32(), "date32": pa.date32(), "datetime": pa.timestamp("s", "UTC"),
}
_DATETIME64 = re.compile(r"^datetime64\((\d)(?:,\s*'([^']+)')?\)$", re.IGNORECASE)
_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode()
    return _leb128(len(raw)) + raw


def _base(type_name: str) -> tuple[str, bool]:
    """A type name without ``nullable(…)``, and whether it was nullable."""
    lowered = type_name.strip()
    if lowered.lower().startswith("nullable(") and lowered.endswith(")"):
        return lowered[len("nullable("):-1].strip(), True
    return lowered, False


def _storage(base: str) -> tuple[np.dtype, pa.DataType] | None:
    """The wire dtype and Arrow type of a fixed-width type (None for string)."""
    key = base.lower()
    if key in _FIXED:
        return _FIXED[key], _ARROW[key]
    match = _DATETIME64.match(base)
    if match and int(match[1]) in _UNITS:
        return np.dtype("<i8"), pa.timestamp(_UNITS[int(match[1])], match[2] or "UTC")
    if key == "string":
        return None
    raise InvalidInput(f"type '{base}' is not served by the ClickHouse-style interface "
                       "(integers, floats, bool, string, date, datetime, datetime64 and nullable ones are)")


def encode_block(batch: pa.RecordBatch) -> bytes:
    """``batch`` as one Native block. Raises :class:`InvalidInput` for a column type it cannot send."""
    out = BytesIO()
    out.write(_leb128(batch.num_columns) + _leb128(batch.num_rows))
    for field, column in zip(batch.schema, batch.columns, strict=True):
        base, nullable = from_arrow(field.type).name, field.nullable
        out.write(_text(field.name) + _text(f"nullable({base})" if nullable else base))
        if nullable:
            out.write(np.asarray(column.is_null(), dtype=np.uint8).tobytes())
        storage = _storage(base)
        if storage is None:
            for value in pc.fill_null(column.cast(pa.string()), "").to_pylist():
                out.write(_text(value))
            continue
        dtype, arrow_type = storage
        physical = column.cast(arrow_type)
        if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
            physical = physical.cast(pa.int64() if pa.types.is_timestamp(arrow_type) else pa.int32())
        values = pc.fill_null(physical, False if pa.types.is_boolean(arrow_type) else 0)
        out.write(np.asarray(values.to_numpy(zero_copy_only=False)).astype(dtype).tobytes())
    return out.getvalue()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def done(self) -> bool:
        return self.at >= len(self.data)

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise InvalidInput("the Native data ends in the middle of a block")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def leb128(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def text(self) -> str:
        return self.take(self.leb128()).decode()


def decode_blocks(data: bytes) -> list[pa.RecordBatch]:
    """The Native blocks of ``data`` as Arrow batches. Raises :class:`InvalidInput` naming the
    column whose type it cannot read, or when the data is cut short."""
    reader, batches = _Reader(data), []
    while not reader.done():
        num_columns, num_rows = reader.leb128(), reader.leb128()
        arrays, fields = [], []
        for _ in range(num_columns):
            name, type_name = reader.text(), reader.text()
            base, nullable = _base(type_name)
            nulls = np.frombuffer(reader.take(num_rows), dtype=np.uint8).astype(bool) if nullable else None
            try:
                storage = _storage(base)
            except InvalidInput as exc:
                raise InvalidInput(f"column '{name}': {exc.message}") from None
            if storage is None:
                array: pa.Array = pa.array([reader.text() for _ in range(num_rows)], pa.string(), mask=nulls)
            else:
                dtype, arrow_type = storage
                raw = np.frombuffer(reader.take(num_rows * dtype.itemsize), dtype=dtype)
                if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
                    wide = pa.array(raw.astype(np.int64), pa.int64(), mask=nulls)
                    array = wide.cast(pa.int32()).cast(arrow_type) if pa.types.is_date(arrow_type) else wide.cast(arrow_type)
                else:
                    array = pa.array(raw.astype(bool) if pa.types.is_boolean(arrow_type) else raw, arrow_type, mask=nulls)
            arrays.append(array)
            fields.append(pa.field(name, array.type, nullable=nullable))
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)))
    return batches
