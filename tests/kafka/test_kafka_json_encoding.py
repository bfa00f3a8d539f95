"""The JSON documents every row becomes (Kafka messages, and the other destinations' bodies).

``json_documents`` (column-at-a-time, for throughput) must give byte for byte what
``json_document`` gives row by row, for every type a query can produce.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pyarrow as pa
import pytest

from sinkflow.sinks.encode import json_document, json_documents, row_dicts

UTC = dt.timezone.utc
T = dt.datetime(2022, 1, 23, 10, 0, 0, 123456, tzinfo=UTC)


def both_paths_agree(batch: pa.RecordBatch) -> list[bytes]:
    fast = json_documents(batch)
    assert fast == [json_document(row) for row in row_dicts(batch)]
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
        (pa.array([0.1], pa.float32()), ["0.10000000149011612"]),
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
