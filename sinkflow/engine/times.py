"""Event times as epoch microseconds, the unit of every window bound, watermark and dedup time.

Timestamps arrive in the unit of their column's type (``s``, ``ms``, ``us`` or ``ns``);
nanoseconds are rounded down (toward the past, also before 1970).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["from_micros_ceil", "micros", "micros_array"]

_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


def micros(value: int, unit: str) -> int:
    """A timestamp value in ``unit`` as epoch microseconds."""
    return value // 1000 if unit == "ns" else value * _PER_UNIT[unit]


def from_micros_ceil(value: int, unit: str) -> int:
    """The smallest timestamp value in ``unit`` at or after ``value`` microseconds."""
    return value * 1000 if unit == "ns" else -(-value // _PER_UNIT[unit])


def micros_array(column: pa.Array) -> pa.Array:
    """A timestamp array as int64 epoch microseconds."""
    values = column.cast(pa.int64())
    if column.type.unit != "ns":
        return pc.multiply(values, _PER_UNIT[column.type.unit])
    # Integer division truncates toward zero; shift negative values so it rounds down.
    return pc.divide(pc.subtract(values, pc.if_else(pc.less(values, 0), 999, 0)), 1000)
