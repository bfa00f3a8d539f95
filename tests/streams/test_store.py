"""Creating, listing, describing and dropping streams; schemas, settings, _tp_time and durability."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from sinkflow.errors import AlreadyExists, InvalidInput, NotFound
from sinkflow.streams.log import LogOptions
from sinkflow.streams.store import StreamSettings, StreamStore
from sinkflow.streams.types import TP_TIME, Column, parse_type

from .conftest import FakeClock


def cols(**types: str) -> list[Column]:
    return [Column(name, parse_type(t)) for name, t in types.items()]


def test_create_describe_list_drop(store: StreamStore, data_dir: Path) -> None:
    stream = store.create("clicks", cols(user="string", n="int32"), StreamSettings(description="web clicks"))
    assert [c.name for c in stream.columns] == ["user", "n", TP_TIME]
    assert stream.columns[-1].type.name == "datetime64(3, 'UTC')"
    assert stream.schema.field(TP_TIME).type == pa.timestamp("ms", tz="UTC")
    assert stream.to_dict() == {
        "name": "clicks",
        "columns": [
            {"name": "user", "type": "string"},
            {"name": "n", "type": "int32"},
            {"name": TP_TIME, "type": "datetime64(3, 'UTC')"},
        ],
        "event_time_column": None,
        "retention_ms": None,
        "retention_bytes": None,
        "description": "web clicks",
        "mode": "append",
        "head": 0,
        "start": 0,
    }
    store.create("views", cols(page="string"))
    assert [s.name for s in store.list()] == ["clicks", "views"]
    assert store.exists("clicks") and store.get("clicks") is stream

    store.drop("clicks")
    assert [s.name for s in store.list()] == ["views"]
    assert not store.exists("clicks")
    assert sorted(p.name for p in (data_dir / "streams").iterdir()) == ["views"]
    with pytest.raises(NotFound, match="stream 'clicks' does not exist"):
        store.get("clicks")
    with pytest.raises(NotFound, match="'clicks'"):
        store.drop("clicks")


def test_recreate_after_drop_starts_empty(store: StreamStore) -> None:
    store.create("s", cols(a="int64")).append_rows(["a"], [[1], [2]])
    store.drop("s")
    again = store.create("s", cols(b="string"))
    assert again.head == 0 and again.table().num_rows == 0
    assert again.schema.names == ["b", TP_TIME]


@pytest.mark.parametrize(
    ("name", "columns", "settings", "message"),
    [
        ("1abc", cols(a="int8"), StreamSettings(), "invalid stream name '1abc'"),
        ("my-stream", cols(a="int8"), StreamSettings(), "invalid stream name 'my-stream'"),
        ("", cols(a="int8"), StreamSettings(), "invalid stream name ''"),
        ("s", [], StreamSettings(), "stream 's' needs at least one column"),
        ("s", [Column("bad name", parse_type("int8"))], StreamSettings(), "invalid column name 'bad name'"),
        ("s", cols(a="int8") + cols(a="string"), StreamSettings(), "column 'a' is defined twice"),
        ("s", cols(a="int8"), StreamSettings(event_time_column="ts"), "event_time_column 'ts' is not a column"),
        (
            "s",
            cols(a="int8", ts="string"),
            StreamSettings(event_time_column="ts"),
            "event_time_column 'ts' must be a datetime or datetime64 column, not string",
        ),
        (
            "s",
            cols(a="int8"),
            StreamSettings(retention_ms=0),
            "setting 'retention_ms' must be a positive integer, got 0",
        ),
        (
            "s",
            cols(a="int8"),
            StreamSettings(retention_bytes=-5),
            "setting 'retention_bytes' must be a positive integer",
        ),
    ],
)
def test_create_rejects_bad_definitions(
    store: StreamStore, data_dir: Path, name: str, columns: list[Column], settings: StreamSettings, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.create(name, columns, settings)
    assert store.list() == []
    assert list((data_dir / "streams").iterdir()) == []


def test_create_twice_is_already_exists(store: StreamStore) -> None:
    first = store.create("s", cols(a="int8"))
    first.append_rows(None, [[1]])
    with pytest.raises(AlreadyExists, match="stream 's' already exists"):
        store.create("s", cols(b="string"))
    assert store.get("s").table().column("a").to_pylist() == [1]


def test_explicit_tp_time_column_is_the_implicit_one(store: StreamStore) -> None:
    stream = store.create("s", cols(a="int8", _tp_time="datetime64(3, 'UTC')"))
    assert stream.schema.names == ["a", TP_TIME]


def test_tp_time_from_event_time_column(store: StreamStore) -> None:
    stream = store.create("s", cols(v="int32", at="datetime64(3)"), StreamSettings(event_time_column="at"))
    stream.append_rows(["v", "at"], [[1, "2022-01-23T10:00:00.123Z"], [2, "2022-01-23 10:00:05"]])
    table = stream.table()
    expected = [datetime(2022, 1, 23, 10, 0, 0, 123000, tzinfo=UTC), datetime(2022, 1, 23, 10, 0, 5, tzinfo=UTC)]
    assert table.column(TP_TIME).to_pylist() == expected
    assert table.column("at").to_pylist() == expected


def test_tp_time_from_a_datetime_column_in_another_zone_and_unit(store: StreamStore) -> None:
    stream = store.create("s", cols(at="datetime('Europe/Berlin')"), StreamSettings(event_time_column="at"))
    stream.append_rows(["at"], [["2022-06-01 12:00:00"]])  # no zone given: Berlin (UTC+2 in summer)
    assert stream.table().column(TP_TIME).to_pylist() == [datetime(2022, 6, 1, 10, 0, 0, tzinfo=UTC)]


def test_tp_time_is_ingest_time_without_event_time_column(store: StreamStore, clock: FakeClock) -> None:
    stream = store.create("s", cols(v="int32"))
    clock.now = 1_650_000_000.25
    stream.append_rows(["v"], [[1], [2]])
    assert stream.table().column(TP_TIME).to_pylist() == [datetime.fromtimestamp(1_650_000_000.25, UTC)] * 2


def test_nullable_event_time_falls_back_to_ingest_time(store: StreamStore, clock: FakeClock) -> None:
    stream = store.create("s", cols(at="nullable(datetime64(3))"), StreamSettings(event_time_column="at"))
    clock.now = 1_650_000_000.0
    stream.append_rows(["at"], [[None], ["2022-01-01T00:00:00Z"]])
    assert stream.table().column(TP_TIME).to_pylist() == [
        datetime.fromtimestamp(1_650_000_000, UTC),
        datetime(2022, 1, 1, tzinfo=UTC),
    ]


def test_append_batch_casts_reorders_and_defaults(store: StreamStore) -> None:
    stream = store.create("s", cols(a="int32", b="string", c="nullable(float64)", d="float32"))
    batch = pa.record_batch({"d": pa.array([1.5, 2.5]), "a": pa.array([1, 2], pa.int64())})
    result = stream.append_batch(batch)
    assert (result.first_seq, result.count) == (0, 2)
    table = stream.table()
    assert table.schema.field("a").type == pa.int32()
    assert table.drop_columns([TP_TIME]).to_pylist() == [
        {"a": 1, "b": "", "c": None, "d": 1.5},
        {"a": 2, "b": "", "c": None, "d": 2.5},
    ]


def test_append_batch_with_explicit_tp_time(store: StreamStore) -> None:
    stream = store.create("s", cols(a="int32"))
    ts = pa.array([1_000, 2_000], pa.timestamp("ms", tz="UTC"))
    stream.append_batch(pa.record_batch({"a": [1, 2], TP_TIME: ts}))
    assert stream.table().column(TP_TIME).to_pylist() == [
        datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (pa.record_batch({"a": [1], "zzz": [2]}), "unknown column 'zzz' in stream 's'"),
        (pa.record_batch({"a": [300]}), "column 'a': cannot store int64 values as int8"),
        (pa.record_batch({"a": ["x"]}), "column 'a': cannot store string values as int8"),
        (pa.record_batch({"a": pa.array([[1]])}), "column 'a': cannot store list<item: int64> values as int8"),
        (pa.record_batch({"a": [1], TP_TIME: ["now"]}), "column '_tp_time' must hold timestamps, not string"),
    ],
)
def test_append_batch_rejections_store_nothing(store: StreamStore, batch: pa.RecordBatch, message: str) -> None:
    stream = store.create("s", cols(a="int8"))
    stream.append_rows(None, [[7]])
    with pytest.raises(InvalidInput, match=message):
        stream.append_batch(batch)
    assert stream.head == 1
    assert stream.table().column("a").to_pylist() == [7]


def test_everything_survives_reopen(data_dir: Path, clock: FakeClock) -> None:
    store = StreamStore(data_dir, clock=clock)
    settings = StreamSettings(event_time_column="at", retention_ms=86_400_000, retention_bytes=10**9, description="d")
    a = store.create("a", cols(x="int64", at="datetime64(3)", tags="array(string)"), settings)
    b = store.create("b", cols(y="nullable(decimal(10, 2))"))
    for i in range(5):
        a.append_rows(None, [[i, f"2022-01-01T00:00:0{i}Z", [str(i)]], [i * 10, 1_640_995_200_000 + i, []]])
    b.append_rows(None, [["1.25"], [None]])
    before_a, before_b = a.table(), b.table()
    store.close()

    reopened = StreamStore(data_dir, clock=clock)
    assert [s.name for s in reopened.list()] == ["a", "b"]
    ra, rb = reopened.get("a"), reopened.get("b")
    assert ra.settings == settings
    assert [c.to_dict() for c in ra.columns] == [c.to_dict() for c in a.columns]
    assert ra.schema == a.schema and rb.schema == b.schema
    assert ra.table().equals(before_a) and rb.table().equals(before_b)
    assert (ra.head, ra.start, rb.head) == (10, 0, 2)
    # Appends continue the sequence numbers.
    assert ra.append_rows(["x"], [[99]]).first_seq == 10
    assert ra.read(10, 10)[0][1].column("x").to_pylist() == [99]
    reopened.close()


def test_metadata_is_plain_json_per_stream(store: StreamStore, data_dir: Path) -> None:
    store.create("s", cols(a="nullable(int16)", t="datetime64(3, 'Asia/Tokyo')"), StreamSettings(retention_ms=5000))
    meta = json.loads((data_dir / "streams" / "s" / "stream.json").read_text())
    assert meta["columns"] == [
        {"name": "a", "type": "nullable(int16)"},
        {"name": "t", "type": "datetime64(3, 'Asia/Tokyo')"},
    ]
    assert meta["settings"]["retention_ms"] == 5000


def test_interrupted_drop_is_cleaned_up_on_start(data_dir: Path) -> None:
    store = StreamStore(data_dir)
    store.create("keep", cols(a="int8"))
    store.close()
    leftover = data_dir / "streams" / ".dropped-gone-1234"
    (leftover / "log").mkdir(parents=True)
    (leftover / "stream.json").write_text(json.dumps({"name": "gone", "columns": [{"name": "a", "type": "int8"}]}))
    store = StreamStore(data_dir)
    assert [s.name for s in store.list()] == ["keep"]
    assert not leftover.exists()
    store.close()


def test_fsync_option_keeps_working(data_dir: Path) -> None:
    store = StreamStore(data_dir, LogOptions(fsync=True))
    stream = store.create("s", cols(a="int8"))
    stream.append_rows(None, [[1], [2]])
    store.close()
    assert StreamStore(data_dir).get("s").table().column("a").to_pylist() == [1, 2]


def test_append_table_is_one_unit(store: StreamStore) -> None:
    stream = store.create("s", cols(a="int32"))
    table = pa.Table.from_batches([pa.record_batch({"a": [1, 2]}), pa.record_batch({"a": [3]})])
    assert stream.append_batch(table).count == 3
    assert stream.append_batch(table.slice(0, 0)).count == 0
    assert [(seq, b.column("a").to_pylist()) for seq, b in stream.read(0, 100)] == [(0, [1, 2, 3])]


def test_unloadable_stream_is_never_overwritten(data_dir: Path) -> None:
    store = StreamStore(data_dir)
    store.create("s", cols(a="int8")).append_rows(None, [[1]])
    store.close()
    meta = data_dir / "streams" / "s" / "stream.json"
    meta.write_text("{ damaged")
    store = StreamStore(data_dir)
    assert store.list() == []
    with pytest.raises(AlreadyExists, match="exists on disk but could not be loaded"):
        store.create("s", cols(b="string"))
    assert meta.read_text() == "{ damaged"
    assert list((data_dir / "streams" / "s" / "log").glob("*.arrows"))
    store.close()


def test_settings_from_dict_accepts_timeplus_names_and_text_numbers() -> None:
    settings = StreamSettings.from_dict(
        {"event_time_column": "t", "logstore_retention_ms": "86400000", "logstore_retention_bytes": 1024, "ttl": None}
    )
    assert settings == StreamSettings(event_time_column="t", retention_ms=86_400_000, retention_bytes=1024)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"modus": "append"}, "unknown stream setting 'modus'"),
        ({"mode": "upsert"}, "setting 'mode' must be one of append, versioned_kv, changelog_kv, mutable, got 'upsert'"),
        ({"eps": "fast"}, "setting 'eps' must be a number >= 0, got 'fast'"),
        ({"logstore_retention_ms": "soon"}, "setting 'logstore_retention_ms' must be a positive integer, got 'soon'"),
        ({"retention_bytes": True}, "setting 'retention_bytes' must be a positive integer, got true"),
        ({"event_time_column": 5}, "setting 'event_time_column' must be a string, got 5"),
    ],
)
def test_settings_from_dict_rejects(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        StreamSettings.from_dict(data)
    assert error.value.message.startswith(message)


def test_reading_a_dropped_stream_is_not_found(store: StreamStore) -> None:
    stream = store.create("s", cols(a="int8"))
    stream.append_rows(None, [[1]])
    store.drop("s")
    with pytest.raises(NotFound, match="stream 's' was dropped"):
        stream.read(0, 10)


async def test_dropping_wakes_waiters(store: StreamStore) -> None:
    import asyncio

    stream = store.create("s", cols(a="int8"))
    waiter = asyncio.create_task(stream.wait_for(0, 30))
    await asyncio.sleep(0.01)
    store.drop("s")
    assert await asyncio.wait_for(waiter, 2) is False


def test_tp_time_given_in_rows(store: StreamStore) -> None:
    stream = store.create("s", cols(a="int8", t="datetime64(3)"), StreamSettings(event_time_column="t"))
    stream.append_rows(["a", "t", TP_TIME], [[1, "2022-01-01T00:00:00Z", "2023-05-05T05:05:05.005Z"]])
    row = stream.table().to_pylist()[0]
    assert row[TP_TIME] == datetime(2023, 5, 5, 5, 5, 5, 5000, tzinfo=UTC)
    assert row["t"] == datetime(2022, 1, 1, tzinfo=UTC)


def test_column_defaults_need_a_compiler(store: StreamStore) -> None:
    # A store without an expression compiler refuses them rather than ignoring them.
    with pytest.raises(InvalidInput, match="stream 's': column DEFAULT expressions are not available"):
        store.create("s", [Column("n", parse_type("int32"), default="42")])
    assert not store.exists("s")
    # The event time's usual default is what every stream does anyway.
    stream = store.create(
        "s", [Column("n", parse_type("int32")), Column(TP_TIME, parse_type("datetime64(3)"), "now64(3)")]
    )
    assert stream.schema.names == ["n", TP_TIME]


def test_append_batch_nulls_in_non_nullable_columns_become_defaults(store: StreamStore) -> None:
    stream = store.create("s", cols(a="int32", b="string", c="array(int8)", d="nullable(int8)"))
    stream.append_batch(
        pa.record_batch(
            {
                "a": pa.array([None, 1], pa.int32()),
                "b": pa.array([None, "x"]),
                "c": pa.array([None, [1]], pa.list_(pa.int8())),
                "d": pa.array([None, 2], pa.int8()),
            }
        )
    )
    assert stream.table().drop_columns([TP_TIME]).to_pylist() == [
        {"a": 0, "b": "", "c": [], "d": None},
        {"a": 1, "b": "x", "c": [1], "d": 2},
    ]


def test_added_column_reads_its_default_for_old_rows_also_after_a_restart(data_dir: Path) -> None:
    from sinkflow.sql.defaults import compile_default
    from sinkflow.streams.log import LogOptions

    options = LogOptions(segment_bytes=1)  # every append rolls: old rows sit in sealed, indexed segments
    store = StreamStore(data_dir, options, defaults=compile_default)
    stream = store.create("s", cols(id="int32"))
    stream.append_rows(["id"], [[1], [2]])
    stream.append_rows(["id"], [[3]])
    store.add_column("s", Column("tag", parse_type("string"), "concat('t', to_string(id * 10))"))
    store.add_column("s", Column("n", parse_type("nullable(int64)")), position="first")
    store.get("s").append_rows(["id", "tag"], [[4, "given"]])
    expected = [(None, 1, "t10"), (None, 2, "t20"), (None, 3, "t30"), (None, 4, "given")]
    assert [(r["n"], r["id"], r["tag"]) for r in store.get("s").table().to_pylist()] == expected
    store.close()
    reopened = StreamStore(data_dir, options, defaults=compile_default)
    stream = reopened.get("s")
    assert [c.name for c in stream.columns] == ["n", "id", "tag", TP_TIME]
    assert [(r["n"], r["id"], r["tag"]) for r in stream.table().to_pylist()] == expected
    assert [seq for seq, _ in stream.read(0, 100)] == [0, 2, 3]  # sequence numbers unchanged
    stream.append_rows(None, [[7, 5, "x"]])
    assert stream.table().num_rows == 5
    reopened.close()


def test_random_stream_columns_without_a_default_get_random_values_of_their_type(data_dir: Path) -> None:
    from sinkflow.sql.defaults import compile_default

    store = StreamStore(data_dir, defaults=compile_default)
    columns = cols(a="int8", b="uint16", s="string", e="enum8('x' = 1, 'y' = 2)", u="uuid", arr="array(int32)")
    stream = store.create("r", [*columns, Column("c", parse_type("string"), "'fixed'")], StreamSettings(random=True))
    stream.generate(200)
    rows = stream.table().to_pylist()
    assert len(rows) == 200
    assert all(-128 <= r["a"] <= 127 and 0 <= r["b"] <= 65535 and len(r["s"]) <= 20 for r in rows)
    assert {r["e"] for r in rows} == {"x", "y"} and all(len(r["u"]) == 36 for r in rows)
    assert len({r["a"] for r in rows}) > 50 and all(r["arr"] == [] and r["c"] == "fixed" for r in rows)
    assert stream.settings.eps == 1000.0 and stream.settings.retention_bytes == 64 * 1024 * 1024
    store.close()
