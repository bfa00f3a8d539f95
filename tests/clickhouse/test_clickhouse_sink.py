"""The ClickHouse sink against a real Debian clickhouse-server 18.16, driven through the Sink protocol."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from sinkflow.sinks.base import PermanentError, RetryableError, SinkEnv, WriteContext
from sinkflow.sinks.clickhouse import ClickHouseSink
from sinkflow.sinks.registry import parse_properties
from tests.clickhouse.car_results import COLUMNS, SCHEMA, car_batch, rows_of
from tests.servers.clickhouse import ClickHouseServer
from tests.servers.certificates import self_signed_certificate
from tests.servers.process import free_port, running
from tests.servers.stunnel import Stunnel

SELECT = f"SELECT {', '.join(COLUMNS)} FROM {{table}} ORDER BY cid, time"


def make_sink(props: dict[str, Any], schema: pa.Schema = SCHEMA, sink_id: str = "sink-1") -> ClickHouseSink:
    config = parse_properties("clickhouse", props)
    return ClickHouseSink(config, SinkEnv(sink_id=sink_id, sink_name=sink_id, output_schema=schema))  # type: ignore[arg-type]


def hosts_props(server: ClickHouseServer, table: str, **extra: Any) -> dict[str, Any]:
    return {
        "table_name": table,
        "hosts": [server.address],
        "username": server.user,
        "password": server.password,
        "database": "default",
        **extra,
    }


async def deliver(sink: ClickHouseSink, batches: list[pa.RecordBatch], sink_id: str = "sink-1") -> None:
    """What the runtime does: open, one write + flush per epoch, close."""
    await sink.open()
    try:
        for epoch, batch in enumerate(batches, start=1):
            await sink.write(batch, WriteContext(sink_id, epoch, 0))
            await sink.flush(epoch)
    finally:
        await sink.close()


async def test_engine_and_suffix_create_the_table_and_every_row_arrives(
    clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    batches = [car_batch(0), car_batch(1), car_batch(2)]
    sink = make_sink(hosts_props(clickhouse_server, table_name, engine="MergeTree()", suffix="ORDER BY time"))
    await deliver(sink, batches)

    client = clickhouse_server.client()
    assert client.execute(SELECT.format(table=table_name)) == rows_of(*batches)
    types = dict(client.execute(f"SELECT name, type FROM system.columns WHERE table = '{table_name}'"))
    # 18.16 has no DateTime64 and no Bool: the documented fallbacks. The sorting key column
    # (named in suffix) is not Nullable, ClickHouse refuses Nullable keys.
    assert types == {
        "time": "DateTime('UTC')",
        "cid": "Nullable(String)",
        "speed_kmh": "Nullable(Float64)",
        "total_km": "Nullable(Float64)",
        "gas_percent": "Nullable(Float64)",
        "locked": "Nullable(UInt8)",
        "in_use": "Nullable(UInt8)",
        "fee": "Nullable(Decimal(10, 2))",
        "note": "Nullable(String)",
    }
    engine = client.execute(f"SELECT engine, sorting_key FROM system.tables WHERE name = '{table_name}'")
    assert engine == [("MergeTree", "time")]


async def test_init_sql_creates_the_table_via_dsn_and_engine_is_ignored(
    clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    init_sql = (
        f"CREATE TABLE {table_name} (time DateTime('UTC'), cid String, speed_kmh Float64, total_km Float64, "
        "gas_percent Float32, locked UInt8, in_use UInt8, fee Decimal(12, 2), note Nullable(String), "
        "ingested DateTime DEFAULT now()) ENGINE = MergeTree() PARTITION BY toYYYYMM(time) ORDER BY (cid, time)"
    )
    props = {
        "table_name": table_name,
        "dsn": clickhouse_server.dsn(),
        "init_sql": init_sql,
        "engine": "NoSuchEngine()",  # ignored: init_sql wins
        "hosts": ["127.0.0.1:1"],  # ignored: dsn wins
    }
    batches = [car_batch(0), car_batch(1)]
    await deliver(make_sink(props), batches)

    client = clickhouse_server.client()
    rows = client.execute(SELECT.format(table=table_name))
    expected = rows_of(*batches)
    assert [row[:4] + row[5:] for row in rows] == [row[:4] + row[5:] for row in expected]
    # gas_percent went into a Float32 column by the table's choice.
    assert [row[4] for row in rows] == pytest.approx([row[4] for row in expected])
    assert client.execute(f"SELECT count() FROM {table_name} WHERE ingested > toDateTime('2000-01-01 00:00:00')") == [(6,)]


async def test_existing_table_is_filled_by_column_name(clickhouse_server: ClickHouseServer, table_name: str) -> None:
    client = clickhouse_server.client()
    # Different column order, an extra column with a default, and a time stored as text.
    client.execute(
        f"CREATE TABLE {table_name} (note Nullable(String), fee Decimal(10, 2), in_use UInt8, locked UInt8, "
        "gas_percent Float64, total_km Float64, speed_kmh Float64, cid String, time String, "
        "region String DEFAULT 'eu') ENGINE = Memory"
    )
    batch = car_batch(4)
    sink = make_sink(hosts_props(clickhouse_server, table_name, engine="MergeTree()", suffix="ORDER BY time"))
    await deliver(sink, [batch])

    rows = client.execute(SELECT.format(table=table_name))
    # The time went into a String column, printed as Timeplus prints a datetime64(3).
    expected = [("2022-01-23 10:00:10.000", *row[1:]) for row in rows_of(batch)]
    assert rows == expected
    assert client.execute(f"SELECT DISTINCT region FROM {table_name}") == [("eu",)]
    assert client.execute(f"SELECT engine FROM system.tables WHERE name = '{table_name}'") == [("Memory",)]


async def test_float32_values_arrive_as_timeplus_prints_them(clickhouse_server: ClickHouseServer, table_name: str) -> None:
    client = clickhouse_server.client()
    client.execute(f"CREATE TABLE {table_name} (f32 Float32, f64 Float64, txt String) ENGINE = Memory")
    values = pa.array([126.95, 119.84], pa.float32())
    batch = pa.record_batch({"f32": values, "f64": values, "txt": values})
    sink = make_sink(hosts_props(clickhouse_server, table_name, engine="Memory"), batch.schema)
    await deliver(sink, [batch])
    rows = client.execute(f"SELECT toString(f32), toString(f64), txt FROM {table_name} ORDER BY f64")
    assert rows == [("119.84", "119.84", "119.84"), ("126.95", "126.95", "126.95")]


async def test_query_column_missing_from_existing_table_is_named_at_open(
    clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    client = clickhouse_server.client()
    client.execute(f"CREATE TABLE {table_name} (time DateTime, cid String, speed_kmh Float64) ENGINE = Memory")
    sink = make_sink(hosts_props(clickhouse_server, table_name, engine="MergeTree()", suffix="ORDER BY time"))
    with pytest.raises(PermanentError) as caught:
        await sink.open()
    await sink.close()
    assert "'total_km'" in caught.value.message and "'note'" in caught.value.message
    assert table_name in caught.value.message
    assert client.execute(f"SELECT count() FROM {table_name}") == [(0,)]


async def test_hosts_first_host_down_uses_the_next(clickhouse_server: ClickHouseServer, table_name: str) -> None:
    props = hosts_props(clickhouse_server, table_name, engine="Memory")
    props["hosts"] = f"127.0.0.1:{free_port()},{clickhouse_server.address}"  # comma-separated form
    batch = car_batch(7)
    await deliver(make_sink(props), [batch])
    assert clickhouse_server.client().execute(SELECT.format(table=table_name)) == rows_of(batch)


async def test_no_host_reachable_is_retryable(table_name: str) -> None:
    props = {"table_name": table_name, "hosts": [f"127.0.0.1:{free_port()}"], "engine": "Memory"}
    sink = make_sink(props)
    with pytest.raises(RetryableError) as caught:
        await sink.open()
    assert "unreachable" in caught.value.message


async def test_bad_password_is_a_clear_permanent_error_without_the_password(
    clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    wrong = "not-the-password-91c2"
    for props in (
        {"table_name": table_name, "dsn": clickhouse_server.dsn(password=wrong), "engine": "Memory"},
        hosts_props(clickhouse_server, table_name, password=wrong, engine="Memory"),
    ):
        sink = make_sink(props)
        with pytest.raises(PermanentError) as caught:
            await sink.open()
        await sink.close()
        message = caught.value.message
        assert "refused the login" in message and "password" in message.lower()
        assert wrong not in message and wrong not in str(caught.value)
    assert clickhouse_server.client().execute(f"EXISTS TABLE {table_name}") == [(0,)]


async def test_server_stopped_mid_stream_then_restarted_loses_nothing(
    private_clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    server = private_clickhouse_server
    sink = make_sink(hosts_props(server, table_name, engine="MergeTree()", suffix="ORDER BY (cid, time)"))
    await sink.open()
    first, second, third = car_batch(0), car_batch(1), car_batch(2)
    await sink.write(first, WriteContext("sink-1", 1, 0))

    server.stop()
    with pytest.raises(RetryableError):
        await sink.write(second, WriteContext("sink-1", 2, 0))
    with pytest.raises(RetryableError):  # still down: the runtime keeps retrying
        await sink.write(second, WriteContext("sink-1", 2, 0))

    server.start()  # same ports, same data directory
    await sink.write(second, WriteContext("sink-1", 2, 0))  # the runtime's retry
    await sink.write(third, WriteContext("sink-1", 3, 0))
    await sink.close()
    assert server.client().execute(SELECT.format(table=table_name)) == rows_of(first, second, third)


async def test_wrong_typed_value_is_a_permanent_error_naming_the_column(
    clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    client = clickhouse_server.client()
    client.execute(
        f"CREATE TABLE {table_name} (time DateTime, cid UInt32, speed_kmh Float64, total_km Float64, "
        "gas_percent Float64, locked UInt8, in_use UInt8, fee Decimal(10, 2), note Nullable(String)) ENGINE = Memory"
    )
    sink = make_sink(hosts_props(clickhouse_server, table_name, engine="Memory"))
    await sink.open()
    with pytest.raises(PermanentError) as caught:
        await sink.write(car_batch(0), WriteContext("sink-1", 1, 0))  # cid 'c0000' into UInt32
    await sink.close()
    assert "cid" in caught.value.message
    assert client.execute(f"SELECT count() FROM {table_name}") == [(0,)]


async def test_a_row_whose_value_does_not_fit_fails_its_batch_and_the_next_batch_goes_in(
    clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    client = clickhouse_server.client()
    client.execute(f"CREATE TABLE {table_name} (cid String, speed UInt8) ENGINE = Memory")
    schema = pa.schema([("cid", pa.string()), ("speed", pa.int64())])
    sink = make_sink(hosts_props(clickhouse_server, table_name, engine="Memory"), schema=schema)
    await sink.open()
    bad = pa.RecordBatch.from_pydict({"cid": ["c1", "c2"], "speed": [40, 300]}, schema=schema)
    with pytest.raises(PermanentError) as caught:
        await sink.write(bad, WriteContext("sink-1", 1, 0))
    assert "speed" in caught.value.message
    good = pa.RecordBatch.from_pydict({"cid": ["c3", "c4"], "speed": [50, 60]}, schema=schema)
    await sink.write(good, WriteContext("sink-1", 2, 0))  # same sink, same connection settings
    await sink.close()
    assert client.execute(f"SELECT cid, speed FROM {table_name} ORDER BY cid") == [("c3", 50), ("c4", 60)]


async def test_null_in_a_not_nullable_column_names_row_and_column(
    clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    client = clickhouse_server.client()
    client.execute(
        f"CREATE TABLE {table_name} (time DateTime, cid String, speed_kmh Float64, total_km Float64, "
        "gas_percent Float64, locked UInt8, in_use UInt8, fee Decimal(10, 2), note String) ENGINE = Memory"
    )
    sink = make_sink(hosts_props(clickhouse_server, table_name, engine="Memory"))
    await sink.open()
    with pytest.raises(PermanentError) as caught:
        await sink.write(car_batch(0), WriteContext("sink-1", 1, 0))  # row 1 has note NULL
    await sink.close()
    assert "row 1" in caught.value.message and "'note'" in caught.value.message
    assert client.execute(f"SELECT count() FROM {table_name}") == [(0,)]


async def test_sub_second_times_keep_whole_seconds_on_a_server_without_datetime64(
    clickhouse_server: ClickHouseServer, table_name: str
) -> None:
    schema = pa.schema([("time", pa.timestamp("ms", tz="UTC")), ("cid", pa.string())])
    at = dt.datetime(2022, 1, 23, 10, 0, 1, 987000, tzinfo=dt.timezone.utc)
    batch = pa.RecordBatch.from_pylist([{"time": at, "cid": "c1"}], schema=schema)
    sink = make_sink(hosts_props(clickhouse_server, table_name, engine="Memory"), schema=schema)
    await deliver(sink, [batch])
    assert sink.server_version is None or sink.server_version < (20, 1, 0)
    assert clickhouse_server.client().execute(f"SELECT time, cid FROM {table_name}") == [
        (at.replace(microsecond=0), "c1")
    ]


async def test_a_secure_dsn_passes_through(
    clickhouse_server: ClickHouseServer, table_name: str, tmp_path: Path
) -> None:
    # TLS in front of the native port (stunnel), as a server's port 9440 would offer it.
    certificate = self_signed_certificate(tmp_path / "tls")
    with running(Stunnel(tmp_path / "stunnel", certificate, target_port=clickhouse_server.tcp_port)) as tunnel:
        base = f"clickhouse://{clickhouse_server.user}:{clickhouse_server.password}@127.0.0.1:{tunnel.port}/default"
        dsn = f"{base}?secure=true&ca_certs={certificate.cert_file}"
        batch = car_batch(5)
        await deliver(make_sink({"table_name": table_name, "dsn": dsn, "engine": "Memory"}), [batch])
        assert clickhouse_server.client().execute(SELECT.format(table=table_name)) == rows_of(batch)
        # Without trusting the certificate the connection is refused, and the error says so without the DSN.
        sink = make_sink({"table_name": table_name, "dsn": f"{base}?secure=true", "engine": "Memory"})
        with pytest.raises(RetryableError) as caught:
            await sink.open()
        await sink.close()
        assert "CERTIFICATE" in caught.value.message.upper() and clickhouse_server.password not in caught.value.message


async def test_every_mapped_type_round_trips_with_nulls(clickhouse_server: ClickHouseServer, table_name: str) -> None:
    schema = pa.schema(
        [
            ("i8", pa.int8()), ("u64", pa.uint64()), ("f32", pa.float32()), ("day", pa.date32()),
            ("sec", pa.timestamp("s", tz="UTC")), ("paris", pa.timestamp("us", tz="Europe/Paris")),
            ("tags", pa.list_(pa.string())), ("ids", pa.list_(pa.int32())), ("raw", pa.binary()),
            ("ok", pa.bool_()), ("whole", pa.decimal128(5, 0)),
        ]
    )  # fmt: skip
    at = dt.datetime(2022, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    full = {
        "i8": -3, "u64": 2**63, "f32": 1.5, "day": dt.date(2022, 1, 2), "sec": at, "paris": at,
        "tags": ["a", None], "ids": [1, 2], "raw": b"\x00\xff", "ok": True, "whole": decimal.Decimal("-12"),
    }  # fmt: skip
    batch = pa.RecordBatch.from_pylist([full, dict.fromkeys(schema.names)], schema=schema)
    await deliver(make_sink(hosts_props(clickhouse_server, table_name, engine="Memory"), schema=schema), [batch])

    client = clickhouse_server.client()
    rows = client.execute(f"SELECT {', '.join(schema.names)} FROM {table_name} ORDER BY i8 NULLS LAST")
    # Times keep their zone; a NULL list is stored as [] (ClickHouse has no nullable arrays); bool as 1.
    assert rows == [
        tuple(full.values()),
        (None, None, None, None, None, None, [], [], None, None, None),
    ]
    types = dict(client.execute(f"SELECT name, type FROM system.columns WHERE table = '{table_name}'"))
    assert types["paris"] == "Nullable(DateTime('Europe/Paris'))" and types["tags"] == "Array(Nullable(String))"
