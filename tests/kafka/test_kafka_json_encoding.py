"""The JSON documents every row becomes (Kafka messages, and the other destinations' bodies).

``json_document_array`` / ``json_documents`` (column-at-a-time, for throughput) must give byte
for byte what ``json_document`` gives row by row, for every type a query can produce, on every
encoding path (repeated or distinct values, nulls, slices, chunks, dictionaries).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import random
import struct

import pyarrow as pa
import pytest

from sinkflow.sinks.encode import json_document, json_document_array, json_documents, row_dicts
from tests.clickhouse.car_results import SCHEMA, car_batch

UTC = dt.timezone.utc
T = dt.datetime(2022, 1, 23, 10, 0, 0, 123456, tzinfo=UTC)


def both_paths_agree(batch: pa.RecordBatch | pa.Table) -> list[bytes]:
    """The documents, after checking the columnar paths against the row-by-row reference."""
    array = json_document_array(batch)
    assert array.type == pa.binary() and array.null_count == 0 and len(array) == batch.num_rows
    fast = json_documents(batch)
    assert fast == array.to_pylist() == [json_document(row) for row in row_dicts(batch)]
    return fast


def test_the_seed_query_row_reads_as_users_expect() -> None:
    batch = pa.RecordBatch.from_pydict(
        {
            "time": pa.array([dt.datetime(2022, 1, 23, 10, 0, 2, tzinfo=UTC)], pa.timestamp("ms", "UTC")),
            "cid": ["c0001"],
            "speed_kmh": [40.1],
            "total_km": [12345.0],
            "gas_percent": [0.1 + 0.2],
            "locked": [True],
            "in_use": [False],
            "fee": pa.array([decimal.Decimal("12.30")], pa.decimal128(10, 2)),
        }
    )
    [doc] = both_paths_agree(batch)
    assert doc == (
        b'{"time":"2022-01-23T10:00:02.000+00:00","cid":"c0001","speed_kmh":40.1,"total_km":12345.0,'
        b'"gas_percent":0.30000000000000004,"locked":true,"in_use":false,"fee":12.30}'
    )


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (pa.array([T, None], pa.timestamp("us", "UTC")), ['"2022-01-23T10:00:00.123+00:00"', "null"]),
        (pa.array([T.replace(tzinfo=None)], pa.timestamp("ns")), ['"2022-01-23T10:00:00.123+00:00"']),
        (pa.array([T.replace(microsecond=0)], pa.timestamp("s", "UTC")), ['"2022-01-23T10:00:00.000+00:00"']),
        (pa.array([T], pa.timestamp("ms", "Asia/Kolkata")), ['"2022-01-23T15:30:00.123+05:30"']),
        (pa.array([dt.datetime(1969, 12, 31, 23, 59, 59, 999900)], pa.timestamp("us")), ['"1969-12-31T23:59:59.999+00:00"']),
        (pa.array([dt.date(2022, 1, 23), None]), ['"2022-01-23"', "null"]),
        (pa.array([decimal.Decimal("-0.05"), decimal.Decimal("123456789012345678.12")], pa.decimal128(38, 2)), ["-0.05", "123456789012345678.12"]),
        (pa.array([1.0, -0.0, float("nan"), float("inf"), 1e20, 5e-7, None]), ["1.0", "-0.0", "null", "null", "1e+20", "5e-7", "null"]),
        (pa.array([0.1, 126.95, None, float("nan")], pa.float32()), ["0.1", "126.95", "null", "null"]),  # as Timeplus prints float32
        (pa.array([2**63 - 1, -(2**63), None], pa.int64()), ["9223372036854775807", "-9223372036854775808", "null"]),
        (pa.array([2**64 - 1], pa.uint64()), ["18446744073709551615"]),
        (pa.array([True, False, None]), ["true", "false", "null"]),
        (pa.array(['say "hi"', "back\\slash", "tab\there", "bell\x07", "é/ü 中", None]), [
            '"say \\"hi\\""', '"back\\\\slash"', '"tab\\there"', '"bell\\u0007"', '"é/ü 中"', "null",
        ]),
        (pa.array(["a", "b", "a"]).dictionary_encode(), ['"a"', '"b"', '"a"']),
        (pa.array(['say "hi"', None, "x"]).cast(pa.string_view()), ['"say \\"hi\\""', "null", '"x"']),
        (pa.array([[1, 2], [], None], pa.list_(pa.int32())), ["[1,2]", "[]", "null"]),
        (pa.array([[T]], pa.list_(pa.timestamp("ms", "UTC"))), ['["2022-01-23T10:00:00.123+00:00"]']),
        (pa.array([{"x": 1, "y": "z"}], pa.struct([("x", pa.int8()), ("y", pa.string())])), ['{"x":1,"y":"z"}']),
    ],
)
def test_each_type_encodes_per_the_contract_on_both_paths(array: pa.Array, expected: list[str]) -> None:
    batch = pa.RecordBatch.from_arrays([array], names=["v"])
    docs = both_paths_agree(batch)
    assert [doc.decode()[len('{"v":') : -1] for doc in docs] == expected
    for doc in docs:
        json.loads(doc)  # every document is valid JSON


def test_column_names_are_escaped_and_order_is_kept() -> None:
    batch = pa.RecordBatch.from_pydict({'we"ird': [1], "b": ["x"], "a": [None]})
    assert both_paths_agree(batch) == [b'{"we\\"ird":1,"b":"x","a":null}']


def test_empty_batches_and_sliced_batches() -> None:
    batch = pa.RecordBatch.from_pydict({"n": list(range(10)), "s": [str(i) for i in range(10)]})
    assert json_documents(batch.slice(0, 0)) == []
    assert both_paths_agree(batch.slice(7, 2)) == [b'{"n":7,"s":"7"}', b'{"n":8,"s":"8"}']


def test_documents_are_one_contiguous_binary_array() -> None:
    """What a batch producer hands to librdkafka: one offsets buffer, one data buffer."""
    batch = pa.RecordBatch.from_pydict({"n": [1, 22, 333], "s": ["a", "b", None]})
    array = json_document_array(batch)
    _validity, offsets, data = array.buffers()
    ends = struct.unpack_from("<4i", offsets, 4 * array.offset)
    texts = [data.to_pybytes()[start:end] for start, end in zip(ends, ends[1:])]
    assert texts == [b'{"n":1,"s":"a"}', b'{"n":22,"s":"b"}', b'{"n":333,"s":null}']


def test_the_benchmark_shape_in_windowed_and_distinct_timestamps() -> None:
    """The car query's results (timestamps shared by a window's rows), then one time per row."""
    windowed = pa.Table.from_batches([car_batch(window, cars=100) for window in range(12)], schema=SCHEMA)
    batch = windowed.combine_chunks().to_batches()[0]
    both_paths_agree(batch)
    both_paths_agree(batch.slice(250, 700))
    millis = pa.array(range(batch.num_rows), pa.int64())
    times = pa.compute.add(batch.column(0).view(pa.int64()), millis).view(SCHEMA.field("time").type)
    distinct = batch.set_column(0, "time", times)
    both_paths_agree(distinct)
    both_paths_agree(distinct.slice(3, 500))


FLOATS = [0.0, -0.0, 1.0, -1.5, 0.1 + 0.2, 1e16, 1e-7, 1e15, 123456789.123, 5e-324, 2.2250738585072014e-308,
          1.7976931348623157e308, math.pi * 1e22, 1e21, 1e-5, 0.0001, 12345.0, float("nan"), float("inf"), float("-inf"), None]


def random_floats(count: int) -> list[float]:
    """Doubles from random bit patterns (every exponent, subnormals, NaN payloads) and round numbers."""
    rng = random.Random(7)
    values = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(count)]
    return values + [rng.randint(-10**6, 10**6) / 10 ** rng.randint(0, 6) for _ in range(count)]


@pytest.mark.parametrize("typ", [pa.float64(), pa.float32()])
def test_floats_match_the_reference_on_every_bit_pattern(typ: pa.DataType) -> None:
    values = FLOATS + random_floats(2000)
    column = pa.array(values, pa.float64()).cast(typ, safe=False)
    # A float column in the middle (its text ends with a ",") and last (with the closing "}").
    batch = pa.RecordBatch.from_arrays([column, column], names=["x", "last"])
    docs = both_paths_agree(batch)
    both_paths_agree(batch.slice(5, 17))
    if typ == pa.float64():
        assert [doc[len(b'{"x":') : doc.index(b',"last"')] for doc in docs[:20]] == [
            b"0.0", b"-0.0", b"1.0", b"-1.5", b"0.30000000000000004", b"1e+16", b"1e-7", b"1000000000000000.0",
            b"123456789.123", b"5e-324", b"2.2250738585072014e-308", b"1.7976931348623157e+308",
            b"3.141592653589793e+22", b"1e+21", b"0.00001", b"0.0001", b"12345.0", b"null", b"null", b"null",
        ]


@pytest.mark.parametrize(
    "typ", [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
)
def test_integers_of_every_width_with_nulls_first_middle_and_last(typ: pa.DataType) -> None:
    info_min = 0 if "uint" in str(typ) else -(2 ** (typ.bit_width - 1))
    info_max = 2 ** (typ.bit_width - (0 if "uint" in str(typ) else 1)) - 1
    values = [None, info_min, -1 if info_min else 1, 0, 7, info_max, None, 42, None]
    ones = [v if v is None else 1 for v in values]
    batch = pa.RecordBatch.from_pydict({"i": pa.array(values, typ), "j": pa.array(ones, typ)})
    docs = both_paths_agree(batch)
    assert docs[5].startswith(b'{"i":' + str(info_max).encode() + b",")
    both_paths_agree(batch.slice(1, 7))


DECIMALS = ["0.00", "-0.05", "0.05", "12.30", "-12.30", "99999999.99", "-99999999.99", "1.00", "-1.00", "0.50"]


@pytest.mark.parametrize(
    ("typ", "values"),
    [
        (pa.decimal128(10, 2), DECIMALS),
        (pa.decimal128(17, 5), ["0.00001", "-0.00001", "123456789012.34567", "-123456789012.34567", "0.00000"]),
        (pa.decimal128(18, 2), ["9999999999999999.99", "-0.01"]),  # too wide for the int64 path
        (pa.decimal128(38, 10), ["-0.0000000001", "1234567890123456789012345678.0123456789"]),
        (pa.decimal128(9, 0), ["0", "-5", "123456789"]),
        (pa.decimal128(5, 1), ["0.0", "-0.1", "1234.5"]),
    ],
)
def test_decimals_keep_every_digit_of_their_scale(typ: pa.DataType, values: list[str]) -> None:
    column = pa.array([decimal.Decimal(v) for v in values] + [None], typ)
    docs = both_paths_agree(pa.RecordBatch.from_arrays([column, column], names=["d", "e"]))
    assert [doc.split(b",")[0][len(b'{"d":') :] for doc in docs] == [v.encode() for v in values] + [b"null"]
    both_paths_agree(pa.RecordBatch.from_arrays([column.slice(1)], names=["d"]))


def test_decimal_nulls_hide_whatever_lies_under_them() -> None:
    """Arrow leaves the value under a null undefined: a huge one must not leak into the text."""
    values = pa.array([decimal.Decimal("1.25"), decimal.Decimal("99999999.99"), decimal.Decimal("-3.50")], pa.decimal128(10, 2))
    validity = pa.array([True, False, True]).buffers()[1]
    column = pa.Array.from_buffers(values.type, 3, [validity, values.buffers()[1]])
    assert json_documents(pa.RecordBatch.from_arrays([column], names=["d"])) == [b'{"d":1.25}', b'{"d":null}', b'{"d":-3.50}']


UTC = dt.timezone.utc


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Etc/UTC", "+00:00", "Asia/Kolkata", "America/New_York", "-03:00"])
@pytest.mark.parametrize("distinct", [3, 100, 1000])
def test_timestamps_repeated_or_distinct_in_any_zone_and_unit(unit: str, tz: str | None, distinct: int) -> None:
    """Few distinct values (each formatted once) and many (formatted in bulk), with nulls."""
    rng = random.Random(distinct)
    # 1906-2037 (beyond 2037 Arrow's tz database stops applying DST, which Python's does: a
    # difference of the bulk path for zones with DST, see encode._formatted_iso), and the
    # whole calendar where no DST rules apply.
    low, high = (-2 * 10**12, 4 * 10**12) if tz is None or tz[0] in "+-U" else (-2 * 10**12, 2 * 10**12)
    base = [rng.randint(low, high) * 1000 + rng.randint(0, 999) for _ in range(distinct)]
    micros = [None if i % 97 == 5 else base[i * distinct // 1000] for i in range(1000)]
    column = pa.array(micros, pa.int64()).cast(pa.timestamp("us")).cast(pa.timestamp(unit, tz), safe=False)
    batch = pa.RecordBatch.from_arrays([column, pa.array(range(1000))], names=["t", "n"])
    both_paths_agree(batch)
    both_paths_agree(batch.slice(5, 990))
    both_paths_agree(pa.RecordBatch.from_arrays([column.slice(0, 40)], names=["t"]))


def test_timestamps_at_the_edges_of_the_calendar() -> None:
    times = [dt.datetime(1, 1, 1), dt.datetime(999, 12, 31, 23, 59, 59, 999999), dt.datetime(1969, 12, 31, 23, 59, 59, 999500),
             dt.datetime(9999, 12, 31, 23, 59, 59, 999000), dt.datetime(1970, 1, 1)]
    for values in (times, times * 40, [t for t in times for _ in range(40)]):
        for typ in (pa.timestamp("us"), pa.timestamp("us", "UTC"), pa.timestamp("us", "Europe/Berlin")):
            if typ.tz == "Europe/Berlin":  # no Python datetime holds year 1 or 9999 moved to Berlin either
                values = [t for t in values if 1 < t.year < 9999]
            both_paths_agree(pa.RecordBatch.from_arrays([pa.array(values, pa.timestamp("us")).cast(typ)], names=["t"]))


STRINGS = ['say "hi"', "back\\slash", "tab\there", "bell\x07", "nul\x00x", "é/ü 中 😀", "", "\u2028\u2029", "\x7f", '\\"', None]


@pytest.mark.parametrize("typ", [pa.string(), pa.large_string(), pa.string_view()])
@pytest.mark.parametrize("values", [STRINGS, ["plain", "text", None], ['only "quotes"', "x"], ["ctl\x1f"], ["a", "b"]])
def test_strings_are_escaped_as_orjson_escapes_them(typ: pa.DataType, values: list[str | None]) -> None:
    column = pa.array(values * 3, pa.string()).cast(typ)
    batch = pa.RecordBatch.from_arrays([column, pa.array(range(len(column)))], names=["s", "n"])
    both_paths_agree(batch)
    both_paths_agree(batch.slice(1, len(column) - 2))
    both_paths_agree(pa.RecordBatch.from_arrays([pa.array(range(len(column))), column], names=["n", "s"]))


def test_booleans_sliced_at_any_bit_with_nulls() -> None:
    values = [True, False, None, True, True, False, None, False, True, False, True]
    batch = pa.RecordBatch.from_pydict({"a": pa.array(values), "b": pa.array(values[::-1]), "c": pa.array([True] * 11)})
    for start in range(9):
        both_paths_agree(batch.slice(start, 11 - start))


def test_dictionary_columns_small_large_and_with_nulls() -> None:
    small = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 0, 2] * 20, pa.int8()), pa.array(["a", 'q"', None]))
    large = pa.DictionaryArray.from_arrays(pa.array(list(range(100)) * 3, pa.int32()), pa.array([f"v{i}" for i in range(100)]))
    wide = pa.DictionaryArray.from_arrays(pa.array([3, 1], pa.int16()), pa.array([1.5, 2.5, None, 4.0] * 5))  # more entries than rows
    times = pa.array([dt.datetime(2022, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("ms", "UTC")).dictionary_encode()
    for column in (small, large, wide, times):
        batch = pa.RecordBatch.from_arrays([column, pa.array(range(len(column)))], names=["d", "n"])
        both_paths_agree(batch)
        both_paths_agree(batch.slice(1, len(column) - 1))


def test_chunked_tables_and_batches_without_rows_or_columns() -> None:
    table = pa.Table.from_batches([car_batch(window) for window in range(3)], schema=SCHEMA)
    assert table.column(0).num_chunks == 3
    assert len(both_paths_agree(table)) == 9
    empty = car_batch(0).slice(0, 0)
    assert json_document_array(empty).to_pylist() == [] and json_document_array(empty).type == pa.binary()
    assert json_documents(pa.RecordBatch.from_pydict({})) == []
    no_columns = pa.RecordBatch.from_pydict({"x": [1, 2]}).select([])
    assert json_documents(no_columns) == [b"{}", b"{}"] == [json_document(row) for row in row_dicts(no_columns)]


@pytest.mark.parametrize("order", [["n", "s", "b", "t"], ["b", "t", "n", "s"], ["t", "b", "s", "n"], ["s"], ["b"], ["t"], ["n"]])
def test_any_column_order_puts_the_constant_text_in_the_right_place(order: list[str]) -> None:
    """Columns that carry the text next to them (nulls, few distinct values) in every position."""
    columns = {
        "n": pa.array([1.5, None, 3.25, 4.0]),
        "s": pa.array(["x", None, 'y"', "z"]),
        "b": pa.array([True, None, False, True]),
        "t": pa.array([dt.datetime(2022, 1, 1, tzinfo=UTC)] * 4, pa.timestamp("ms", "UTC")),
    }
    both_paths_agree(pa.RecordBatch.from_pydict({name: columns[name] for name in order}))


def test_many_distinct_timestamps_outside_four_digit_years_with_nulls() -> None:
    """The bulk path when Arrow's text is not fixed-width (years before 1000)."""
    times = [None if i == 3 else dt.datetime(1 + 9 * i, 1 + i % 12, 1 + i % 28, i % 24, i % 60, i % 60, 1000 * i)
             for i in range(100)]
    for typ in (pa.timestamp("ms"), pa.timestamp("ms", "UTC")):
        both_paths_agree(pa.RecordBatch.from_arrays([pa.array(times, pa.timestamp("us")).cast(typ)], names=["t"]))


def test_a_value_json_cannot_hold_is_a_type_error_as_in_the_reference() -> None:
    """Callers (delivery.encode_rows) catch it and find the row that cannot be encoded."""
    batch = pa.RecordBatch.from_pydict({"n": [1], "b": pa.array([b"\x00"], pa.binary())})
    with pytest.raises(TypeError):
        json_document_array(batch)
    with pytest.raises(TypeError):
        json_document(row_dicts(batch)[0])


def test_columns_of_nulls_only() -> None:
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([None, None], typ)
            for typ in (pa.string(), pa.float64(), pa.int32(), pa.bool_(), pa.timestamp("ms"), pa.decimal128(5, 2), pa.null())
        ],
        names=["s", "f", "i", "b", "t", "d", "z"],
    )
    assert both_paths_agree(batch) == [b'{"s":null,"f":null,"i":null,"b":null,"t":null,"d":null,"z":null}'] * 2
