"""Converting rows as users send them into typed batches, and rejecting bad ones whole."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sinkflow.errors import InvalidInput
from sinkflow.streams.ingest import FileChunks
from sinkflow.streams.store import StreamStore
from sinkflow.streams.types import TP_TIME, Column, parse_type

ALL_TYPES = {
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
    "f32": "float32",
    "f64": "float64",
    "dec": "decimal(10, 2)",
    "b": "bool",
    "s": "string",
    "d": "date",
    "dt": "datetime",
    "dt64": "datetime64(3)",
    "dt64z": "datetime64(3, 'America/New_York')",
    "dt6": "datetime64(6)",
    "u": "uuid",
    "arr": "array(int32)",
    "narr": "array(nullable(string))",
    "ni": "nullable(int32)",
    "ns": "nullable(string)",
    "nd": "nullable(decimal(5, 1))",
}


def ingest(
    store: StreamStore, types: dict[str, str], names: list[str] | None, rows: list[list[Any]]
) -> dict[str, list[Any]]:
    stream = store.create("t", [Column(n, parse_type(t)) for n, t in types.items()])
    stream.append_rows(names, rows)
    return stream.table().drop_columns([TP_TIME]).to_pydict()


def only(store: StreamStore, type_: str, values: list[Any]) -> list[Any]:
    if store.exists("t"):
        store.drop("t")
    return ingest(store, {"c": type_}, ["c"], [[v] for v in values])["c"]


UUID = "123e4567-e89b-12d3-a456-426614174000"


def test_every_type_in_one_batch(store: StreamStore) -> None:
    row = [
        -128,
        -32768,
        2_147_483_647,
        -(2**63),
        255,
        65535,
        4_294_967_295,
        2**64 - 1,
        1.5,
        2.25,
        "12.34",
        True,
        "héllo",
        "2022-01-23",
        "2022-01-23 10:00:01",
        "2022-01-23T10:00:00.123Z",
        "2022-01-23 05:00:00.5",
        "2022-01-23T10:00:00.123456Z",
        UUID.upper(),
        [1, 2, 3],
        ["x", None],
        None,
        None,
        None,
    ]
    got = ingest(store, ALL_TYPES, list(ALL_TYPES), [row])
    assert {k: v[0] for k, v in got.items()} == {
        "i8": -128,
        "i16": -32768,
        "i32": 2_147_483_647,
        "i64": -(2**63),
        "u8": 255,
        "u16": 65535,
        "u32": 4_294_967_295,
        "u64": 2**64 - 1,
        "f32": 1.5,
        "f64": 2.25,
        "dec": Decimal("12.34"),
        "b": True,
        "s": "héllo",
        "d": date(2022, 1, 23),
        "dt": datetime(2022, 1, 23, 10, 0, 1, tzinfo=UTC),
        "dt64": datetime(2022, 1, 23, 10, 0, 0, 123000, tzinfo=UTC),
        # No zone in the text: the column's zone (New York, UTC-5 in January) applies.
        "dt64z": datetime(2022, 1, 23, 10, 0, 0, 500000, tzinfo=UTC),
        "dt6": datetime(2022, 1, 23, 10, 0, 0, 123456, tzinfo=UTC),
        "u": UUID,
        "arr": [1, 2, 3],
        "narr": ["x", None],
        "ni": None,
        "ns": None,
        "nd": None,
    }


def test_missing_columns_get_defaults_or_null(store: StreamStore) -> None:
    got = ingest(store, ALL_TYPES, ["i8"], [[1]])
    assert {k: v[0] for k, v in got.items()} == {
        "i8": 1,
        "i16": 0,
        "i32": 0,
        "i64": 0,
        "u8": 0,
        "u16": 0,
        "u32": 0,
        "u64": 0,
        "f32": 0.0,
        "f64": 0.0,
        "dec": Decimal("0.00"),
        "b": False,
        "s": "",
        "d": date(1970, 1, 1),
        "dt": datetime(1970, 1, 1, tzinfo=UTC),
        "dt64": datetime(1970, 1, 1, tzinfo=UTC),
        "dt64z": datetime(1970, 1, 1, tzinfo=UTC),
        "dt6": datetime(1970, 1, 1, tzinfo=UTC),
        "u": "00000000-0000-0000-0000-000000000000",
        "arr": [],
        "narr": [],
        "ni": None,
        "ns": None,
        "nd": None,
    }


def test_columns_none_means_all_in_order(store: StreamStore) -> None:
    assert ingest(store, {"a": "int8", "b": "string"}, None, [[1, "x"], [2, "y"]]) == {"a": [1, 2], "b": ["x", "y"]}


def test_integers_lenient_forms(store: StreamStore) -> None:
    assert only(store, "int16", [1, 2.0, "3", " -4 ", True, False]) == [1, 2, 3, -4, 1, 0]


def test_text_numbers_take_the_same_rules_on_both_paths(store: StreamStore) -> None:
    # All text (CSV): the vectorized parse; text mixed with odd spacing: value by value. Same result.
    assert only(store, "int32", ["1", "-2", "0x10"]) == [1, -2, 16]
    assert only(store, "int32", ["1", " -2 ", "0x10"]) == [1, -2, 16]
    assert only(store, "float32", ["1.5", "-2", "nan"])[:2] == [1.5, -2.0]
    assert only(store, "bool", ["true", "False", "1", "0"]) == [True, False, True, False]


def test_floats_from_ints_text_and_specials(store: StreamStore) -> None:
    got = only(store, "float64", [1, 2.5, "3.25", "1e3", "-inf"])
    assert got == [1.0, 2.5, 3.25, 1000.0, float("-inf")]


def test_bools_from_true_false_and_0_1(store: StreamStore) -> None:
    assert only(store, "bool", [True, False, 1, 0, "true", "FALSE", "1", "0"]) == [
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
    ]


def test_strings_from_scalars_and_json(store: StreamStore) -> None:
    assert only(store, "string", ["a", 1, 2.5, True, {"k": [1]}, [1, "x"]]) == [
        "a",
        "1",
        "2.5",
        "true",
        '{"k":[1]}',
        '[1,"x"]',
    ]


def test_decimals_are_exact(store: StreamStore) -> None:
    got = only(store, "decimal(20, 4)", ["0.1", 0.1, 1, "-12345678.1234", 1e-4, "1E+3", 1234567890123456])
    assert got == [
        Decimal("0.1"),
        Decimal("0.1"),
        Decimal(1),
        Decimal("-12345678.1234"),
        Decimal("0.0001"),
        Decimal(1000),
        Decimal("1234567890123456"),
    ]
    assert str(got[0]) == "0.1000"  # stored with the column's scale, not 0.1000000000000000055…


def test_uuid_canonical_lower_case(store: StreamStore) -> None:
    assert only(store, "uuid", [UUID, UUID.upper()]) == [UUID, UUID]


def test_uuid_other_forms_canonicalised(store: StreamStore) -> None:
    # Forms uuid.UUID reads (braces, no hyphens) are accepted and stored canonically.
    assert only(store, "nullable(uuid)", ["{" + UUID + "}", UUID.replace("-", ""), None]) == [UUID, UUID, None]


def test_dates_from_text_and_day_numbers(store: StreamStore) -> None:
    assert only(store, "date", ["2022-01-23", 0, 19015]) == [date(2022, 1, 23), date(1970, 1, 1), date(2022, 1, 23)]


@pytest.mark.parametrize(
    ("type_", "values", "expected"),
    [
        # Zones in the text win; without one the column's zone (UTC by default) applies.
        (
            "datetime64(3)",
            [
                "2022-01-23T10:00:00.123Z",
                "2022-01-23T12:00:00.123+02:00",
                "2022-01-23 10:00:00.123",
                "2022-01-23T10:00:00",
            ],
            [datetime(2022, 1, 23, 10, 0, 0, 123000, tzinfo=UTC)] * 3 + [datetime(2022, 1, 23, 10, tzinfo=UTC)],
        ),
        # Mixed forms in one column (zone and no zone, numbers and text) take the value-by-value path.
        (
            "datetime64(3)",
            ["2022-01-23T10:00:00.123Z", "2022-01-23 10:00:00.123", 1_642_932_000_123],
            [datetime(2022, 1, 23, 10, 0, 0, 123000, tzinfo=UTC)] * 3,
        ),
        # Epoch numbers: milliseconds for datetime64(3), seconds for datetime.
        ("datetime64(3)", [1_642_932_000_123], [datetime(2022, 1, 23, 10, 0, 0, 123000, tzinfo=UTC)]),
        (
            "datetime",
            [1_642_932_000, 1_642_932_001.9],
            [datetime(2022, 1, 23, 10, tzinfo=UTC), datetime(2022, 1, 23, 10, 0, 1, tzinfo=UTC)],
        ),
        # Extra precision is truncated to the column's unit.
        ("datetime64(3)", ["2022-01-23T10:00:00.123999Z"], [datetime(2022, 1, 23, 10, 0, 0, 123000, tzinfo=UTC)]),
        ("datetime", ["2022-01-23 10:00:00.999"], [datetime(2022, 1, 23, 10, tzinfo=UTC)]),
        # A column zone with daylight saving: the text is local time there.
        (
            "datetime64(3, 'Europe/Berlin')",
            ["2022-01-23 11:00:00", "2022-07-01 12:00:00", "2022-07-01T12:00:00Z"],
            [
                datetime(2022, 1, 23, 10, tzinfo=UTC),
                datetime(2022, 7, 1, 10, tzinfo=UTC),
                datetime(2022, 7, 1, 12, tzinfo=UTC),
            ],
        ),
        (
            "datetime64(3, 'Europe/Berlin')",
            ["2022-07-01 12:00:00", 1_656_676_800_000, "2022-07-01T12:00:00-01:00"],
            [
                datetime(2022, 7, 1, 10, tzinfo=UTC),
                datetime(2022, 7, 1, 12, tzinfo=UTC),
                datetime(2022, 7, 1, 13, tzinfo=UTC),
            ],
        ),
    ],
)
def test_datetimes(store: StreamStore, type_: str, values: list[Any], expected: list[datetime]) -> None:
    got = only(store, type_, values)
    assert [v.astimezone(UTC) for v in got] == expected


def test_datetime_keeps_column_zone_in_schema(store: StreamStore) -> None:
    stream = store.create("t", [Column("c", parse_type("datetime64(3, 'Asia/Tokyo')"))])
    stream.append_rows(None, [["2022-01-01 09:00:00"]])
    value = stream.table().column("c")[0].as_py()
    assert value.utcoffset() == timedelta(hours=9)
    assert value.astimezone(UTC) == datetime(2022, 1, 1, tzinfo=UTC)


def test_arrays(store: StreamStore) -> None:
    got = ingest(
        store,
        {
            "a": "array(int32)",
            "f": "array(float64)",
            "t": "array(datetime64(3))",
            "u": "array(uuid)",
            "n": "nullable(array(string))",
        },
        None,
        [[[1, "2"], [1, 2.5], ["2022-01-01T00:00:00Z", 0], [UUID.upper()], None], [[], [], [], [], ["x"]]],
    )
    assert got == {
        "a": [[1, 2], []],
        "f": [[1.0, 2.5], []],
        "t": [[datetime(2022, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)], []],
        "u": [[UUID], []],
        "n": [None, ["x"]],
    }


def test_nullable_columns_accept_null_and_empty_text(store: StreamStore) -> None:
    got = ingest(
        store,
        {"a": "nullable(int32)", "b": "nullable(string)", "c": "nullable(bool)"},
        None,
        [[None, None, None], ["", "", ""], [5, "x", "true"]],
    )
    assert got == {"a": [None, None, 5], "b": [None, "", "x"], "c": [None, None, True]}


def test_large_batch_vectorized_path(store: StreamStore) -> None:
    rows = [[f"c{i % 100}", i * 0.5, i, i % 2 == 0, 1_642_932_000_000 + i] for i in range(20_000)]
    got = ingest(store, {"cid": "string", "v": "float32", "n": "int64", "b": "bool", "t": "datetime64(3)"}, None, rows)
    assert len(got["cid"]) == 20_000
    assert got["n"][-1] == 19_999 and got["b"][:2] == [True, False]
    assert got["t"][-1] == datetime(2022, 1, 23, 10, 0, 19, 999000, tzinfo=UTC)


# -- rejections: every one names row, column and value, and stores nothing ---------------------------

REJECTIONS = [
    ("float64", [1.0, 2, "fast"], "row 3, column 'c': cannot convert 'fast' to float64"),
    ("float32", [True], "row 1, column 'c': cannot convert true to float32"),
    ("int32", [1, 2.5], "row 2, column 'c': cannot convert 2.5 to int32"),
    ("int8", [1, 128], "row 2, column 'c': cannot convert 128 to int8: out of range -128..127"),
    ("uint16", [-1], "row 1, column 'c': cannot convert -1 to uint16: out of range 0..65535"),
    ("int64", ["12a"], "row 1, column 'c': cannot convert '12a' to int64"),
    ("int32", [[1]], "row 1, column 'c': cannot convert [1] to int32"),
    ("bool", [True, 2], "row 2, column 'c': cannot convert 2 to bool"),
    ("bool", ["yes"], "row 1, column 'c': cannot convert 'yes' to bool"),
    ("string", [None], "row 1, column 'c': cannot convert null to string: not nullable"),
    ("int32", [1, None], "row 2, column 'c': cannot convert null to int32: not nullable"),
    (
        "decimal(10, 2)",
        ["1.234"],
        "row 1, column 'c': cannot convert '1.234' to decimal(10, 2): more than 2 decimal places",
    ),
    (
        "decimal(5, 2)",
        [1234.5],
        "row 1, column 'c': cannot convert 1234.5 to decimal(5, 2): more than 3 digits before the decimal point",
    ),
    ("decimal(10, 2)", ["abc"], "row 1, column 'c': cannot convert 'abc' to decimal(10, 2)"),
    ("decimal(10, 2)", ["NaN"], "row 1, column 'c': cannot convert 'NaN' to decimal(10, 2)"),
    ("uuid", [UUID, "not-a-uuid"], "row 2, column 'c': cannot convert 'not-a-uuid' to uuid"),
    ("uuid", [42], "row 1, column 'c': cannot convert 42 to uuid"),
    ("date", ["2022-13-01"], "row 1, column 'c': cannot convert '2022-13-01' to date"),
    (
        "datetime64(3)",
        ["2022-01-23T10:00:00Z", "yesterday"],
        "row 2, column 'c': cannot convert 'yesterday' to datetime64(3)",
    ),
    ("datetime", [True], "row 1, column 'c': cannot convert true to datetime"),
    ("array(int32)", [[1], "1,2"], "row 2, column 'c': cannot convert '1,2' to array(int32)"),
    (
        "array(int32)",
        [[1, "x"]],
        "row 1, column 'c': cannot convert [1, \"x\"] to array(int32): element 2: cannot convert 'x' to int32",
    ),
    (
        "array(int32)",
        [[1, None]],
        "row 1, column 'c': cannot convert [1, null] to array(int32): "
        "element 2: cannot convert null to int32: not nullable",
    ),
    ("nullable(float64)", [None, "", "x"], "row 3, column 'c': cannot convert 'x' to float64"),
]


@pytest.mark.parametrize(("type_", "values", "message"), REJECTIONS)
def test_bad_value_rejects_whole_batch(store: StreamStore, type_: str, values: list[Any], message: str) -> None:
    stream = store.create("t", [Column("ok", parse_type("int32")), Column("c", parse_type(type_))])
    stream.append_rows(["ok"], [[1]])  # something already there must stay exactly as it was
    with pytest.raises(InvalidInput) as error:
        stream.append_rows(["ok", "c"], [[i, v] for i, v in enumerate(values)])
    assert error.value.message == message
    assert stream.head == 1
    assert stream.table().column("ok").to_pylist() == [1]


@pytest.mark.parametrize(
    ("names", "rows", "message"),
    [
        (["a", "nope"], [[1, 2]], "unknown column 'nope' in stream 't'"),
        (["a", "a"], [[1, 2]], "column 'a' is given twice"),
        (["a", "b"], [[1, "x"], [2]], "row 2: expected 2 values (a, b), got 1 values"),
        (["a", "b"], [[1, "x"], "row"], "row 2: expected 2 values (a, b), got 'row'"),
        (None, [[1, "x", 3]], "row 1: expected 2 values (a, b), got 3 values"),
    ],
)
def test_bad_shape_rejected(store: StreamStore, names: list[str] | None, rows: list[Any], message: str) -> None:
    stream = store.create("t", [Column("a", parse_type("int32")), Column("b", parse_type("string"))])
    with pytest.raises(InvalidInput) as error:
        stream.append_rows(names, rows)
    assert error.value.message == message
    assert stream.head == 0 and stream.table().num_rows == 0


def test_long_values_are_shortened_in_messages(store: StreamStore) -> None:
    stream = store.create("t", [Column("c", parse_type("int32"))])
    with pytest.raises(InvalidInput) as error:
        stream.append_rows(None, [["x" * 500]])
    assert error.value.message.startswith("row 1, column 'c': cannot convert 'xxxx")
    assert len(error.value.message) < 140
    assert stream.head == 0


def test_row_numbers_offset_for_file_chunks(store: StreamStore) -> None:
    stream = store.create("t", [Column("c", parse_type("int32"))])
    with pytest.raises(InvalidInput, match="row 10002, column 'c'"):
        stream.append_rows(None, [[1], ["bad"]], first_row=10_001)


# -- files for `sinkflow ingest` ---------------------------------------------------------------------


def test_csv_chunks_convert_by_the_same_rules(store: StreamStore, tmp_path: Path) -> None:
    path = tmp_path / "cars.csv"
    lines = ["cid,speed_kmh,locked,time,note"]
    lines += [f"c{i},{i}.5,{'true' if i % 2 else 'false'},2022-01-23 10:00:{i:02d}.000,\\N" for i in range(25)]
    path.write_text("\n".join(lines) + "\n")
    stream = store.create(
        "cars",
        [
            Column(n, parse_type(t))
            for n, t in [
                ("cid", "string"),
                ("speed_kmh", "float32"),
                ("locked", "bool"),
                ("time", "datetime64(3)"),
                ("note", "nullable(string)"),
            ]
        ],
    )
    chunks = FileChunks(path, chunk_rows=10)
    sizes = []
    for columns, rows in chunks:
        assert columns == ["cid", "speed_kmh", "locked", "time", "note"]
        stream.append_rows(columns, rows, first_row=chunks.first_row)
        sizes.append(len(rows))
    assert sizes == [10, 10, 5]
    assert chunks.bytes_read == chunks.total_bytes == path.stat().st_size
    table = stream.table()
    assert table.num_rows == 25
    assert table.slice(24).drop_columns([TP_TIME]).to_pylist() == [
        {
            "cid": "c24",
            "speed_kmh": 24.5,
            "locked": False,
            "time": datetime(2022, 1, 23, 10, 0, 24, tzinfo=UTC),
            "note": None,
        }
    ]
    # Appends follow the chunks: the engine sees three batches.
    assert [seq for seq, _ in stream.read(0, 100)] == [0, 10, 20]


def test_csv_bad_value_names_file_row(store: StreamStore, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a\n" + "\n".join(["1"] * 12 + ["oops"]) + "\n")
    stream = store.create("t", [Column("a", parse_type("int32"))])
    chunks = FileChunks(path, chunk_rows=5)
    with pytest.raises(InvalidInput) as error:
        for columns, rows in chunks:
            stream.append_rows(columns, rows, first_row=chunks.first_row)
    assert error.value.message == "row 13, column 'a': cannot convert 'oops' to int32"
    assert stream.head == 10  # the two good chunks before it; nothing of the bad one


def test_csv_wrong_width(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(InvalidInput, match=r"CSV line 3: expected 2 fields \(a, b\), got 1"):
        list(FileChunks(path))


def test_jsonl_chunks_split_where_keys_change(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    records = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"b": "z"}, {"b": "w"}, {"a": 5, "b": "v"}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    chunks = list(FileChunks(path, chunk_rows=100))
    assert chunks == [(["a", "b"], [[1, "x"], [2, "y"]]), (["b"], [["z"], ["w"]]), (["a", "b"], [[5, "v"]])]


def test_jsonl_into_stream_with_lists_and_nulls(store: StreamStore, tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text('{"id": 1, "tags": ["a"], "score": null}\n{"id": 2, "tags": [], "score": "1.50"}\n')
    stream = store.create(
        "t",
        [
            Column("id", parse_type("int64")),
            Column("tags", parse_type("array(string)")),
            Column("score", parse_type("nullable(decimal(6, 2))")),
        ],
    )
    for columns, rows in FileChunks(path):
        stream.append_rows(columns, rows)
    assert stream.table().drop_columns([TP_TIME]).to_pylist() == [
        {"id": 1, "tags": ["a"], "score": None},
        {"id": 2, "tags": [], "score": Decimal("1.50")},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [('{"a": 1}\n{oops\n', "line 2: not valid JSON"), ("[1, 2]\n", "line 1: expected a JSON object, got [1, 2]")],
)
def test_jsonl_bad_lines(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        list(FileChunks(path))


def test_unknown_file_kind(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"")
    with pytest.raises(InvalidInput) as error:
        FileChunks(path)
    assert error.value.message == "cannot ingest 'x.parquet': use a .csv or .jsonl file (or name the format)"


def test_batch_types_match_schema(store: StreamStore) -> None:
    stream = store.create("t", [Column(n, parse_type(t)) for n, t in ALL_TYPES.items()])
    stream.append_rows(["i8"], [[1]])
    assert stream.table().schema == stream.schema
    assert stream.schema.field("dec").type == pa.decimal128(10, 2)


def test_every_type_round_trips_through_disk(data_dir: Path) -> None:
    store = StreamStore(data_dir)
    stream = store.create("t", [Column(n, parse_type(t)) for n, t in ALL_TYPES.items()])
    row = [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        1.5,
        2.5,
        "3.25",
        True,
        "s",
        "2022-01-23",
        "2022-01-23 10:00:00",
        "2022-01-23T10:00:00.123Z",
        "2022-01-23 10:00:00.5",
        "2022-01-23T10:00:00.000001Z",
        UUID,
        [1],
        ["a", None],
        7,
        "x",
        "1.5",
    ]
    stream.append_rows(None, [row, row])
    before = stream.table()
    store.close()
    reopened = StreamStore(data_dir).get("t")
    assert [(c.name, c.type.name) for c in reopened.columns] == [*ALL_TYPES.items(), (TP_TIME, "datetime64(3, 'UTC')")]
    assert reopened.schema == stream.schema
    assert reopened.table().equals(before)
    assert reopened.table().to_pylist()[0]["nd"] == Decimal("1.5")


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffcid,n\r\nc1,1\r\n".encode())
    assert list(FileChunks(path)) == [(["cid", "n"], [["c1", "1"]])]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name\nJosé\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match=r"'latin1\.csv' is not UTF-8 text"):
        list(FileChunks(path))
