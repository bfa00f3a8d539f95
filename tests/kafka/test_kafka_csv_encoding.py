"""The CSV lines every row becomes for a Kafka external stream with ``data_format='CSV'``.

``csv_line_array`` (column-at-a-time) must follow ClickHouse's CSV output (numbers and booleans
bare, everything else double-quoted with inner quotes doubled, null as ``\\N``) with each value
exactly as ``column_texts`` (the row-by-row rendering of templates and e-mails) prints it.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io

import pyarrow as pa

from sinkflow.sinks.encode import column_texts, csv_line_array

UTC = dt.timezone.utc
T = dt.datetime(2022, 1, 23, 10, 0, 0, 123456, tzinfo=UTC)
BARE = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal)


def reference_line(batch: pa.Table, row: int) -> bytes:
    """Row ``row`` spelled by the rules, value by value from ``column_texts``."""
    fields = []
    for column in batch.columns:
        value = column_texts(column)[row]
        if value is None:
            fields.append("\\N")
        elif any(test(column.type) for test in BARE):
            fields.append(value)
        else:
            fields.append('"' + value.replace('"', '""') + '"')
    return ",".join(fields).encode()


def test_every_type_is_rendered_as_the_row_by_row_reference() -> None:
    batch = pa.table({
        "s": ["a", 'say "hi", ok', None, "line\nbreak"],
        "i": pa.array([1, None, -3, 2**62], pa.int64()),
        "u8": pa.array([0, 255, 7, None], pa.uint8()),
        "f": [1.0, 10.5, 0.1, 1e20],
        "f32": pa.array([126.95, 1.5, None, 3], pa.float32()),
        "b": [True, False, None, True],
        "t3": pa.array([T, T.replace(microsecond=0), None, dt.datetime(1969, 7, 20, 20, 17, tzinfo=UTC)],
                       pa.timestamp("ms", "UTC")),
        "t0": pa.array([T.replace(microsecond=0, tzinfo=None)] * 4, pa.timestamp("s")),
        "t6": pa.array([T] * 4, pa.timestamp("us", "UTC")),
        "berlin": pa.array([T] * 4, pa.timestamp("ms", "Europe/Berlin")),
        "d": pa.array([decimal.Decimal("12.30"), decimal.Decimal("-0.05"), decimal.Decimal("0.00"), None],
                      pa.decimal128(10, 2)),
        "day": pa.array([dt.date(2022, 1, 23), None, dt.date(1, 1, 1), dt.date(9999, 12, 31)], pa.date32()),
        "l": [[1, 2], [], None, [3]],
        "codes": pa.array(["x", "y", "x", None]).dictionary_encode(),
    })
    lines = csv_line_array(batch)
    assert lines.type == pa.binary() and lines.null_count == 0
    assert lines.to_pylist() == [reference_line(batch, row) for row in range(batch.num_rows)]
    assert lines[1].as_py().startswith(b'"say ""hi"", ok",\\N,255,10.5,1.5,false,"2022-01-23 10:00:00.000",')


def test_a_csv_reader_gets_the_values_back() -> None:
    batch = pa.table({"cid": ['c,1', 'q"uote', ""], "n": [1, 2, 3], "speed": [0.25, 99.0, -1.5]})
    parsed = [next(csv.reader(io.StringIO(line.decode()))) for line in csv_line_array(batch).to_pylist()]
    assert parsed == [["c,1", "1", "0.25"], ['q"uote', "2", "99"], ["", "3", "-1.5"]]


def test_slices_and_chunks_give_the_same_lines() -> None:
    batch = pa.table({"s": pa.chunked_array([["a", "b"], ["c"]]), "n": pa.chunked_array([[1, 2], [3]])})
    assert csv_line_array(batch).to_pylist() == [b'"a",1', b'"b",2', b'"c",3']
    assert csv_line_array(batch.slice(1)).to_pylist() == [b'"b",2', b'"c",3']
    assert csv_line_array(batch.slice(0, 0)).to_pylist() == []
