"""Event times in microseconds: every unit, nanoseconds rounded toward the past."""

from __future__ import annotations

import pyarrow as pa

from sinkflow.engine.times import from_micros_ceil, micros, micros_array


def test_times_convert_to_microseconds_rounding_down() -> None:
    for unit, values, expected in (("s", [-2, 3], [-2_000_000, 3_000_000]), ("ms", [-2, 3], [-2000, 3000]),
                                   ("us", [-2, 3], [-2, 3]), ("ns", [-1500, -1000, 1500], [-2, -1, 1])):
        array = pa.array(values, pa.timestamp(unit, tz="UTC"))
        assert micros_array(array).to_pylist() == expected
        assert [micros(v, unit) for v in values] == expected


def test_the_first_timestamp_at_or_after_a_microsecond() -> None:
    assert from_micros_ceil(1001, "ms") == 2
    assert from_micros_ceil(-1001, "ms") == -1
    assert from_micros_ceil(7, "ns") == 7000
