"""The direct snowflake sink against fakesnow: in-process (patched connector) and in server mode
(the connector's real wire protocol over HTTP)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow as pa
import pytest
import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sinkflow.errors import ConfigError
from sinkflow.sinks.base import PermanentError, RetryableError, SinkEnv, WriteContext
from sinkflow.sinks.registry import masked, parse_properties, sink_class
from sinkflow.sinks.snowflake import SnowflakeSink
from tests.clickhouse.car_results import COLUMNS, SCHEMA, car_batch, rows_of
from tests.servers.fakesnow_server import FakesnowServer
from tests.servers.process import free_port
from tests.snowflake.conftest import DATABASE, SCHEMA_NAME

PROPS = {"account": "myorg-acct", "user": "loader", "password": "Sn0w-Secret", "database": DATABASE,
         "schema": SCHEMA_NAME, "table": "car_stats"}


def make_sink(props: dict[str, Any], schema: pa.Schema = SCHEMA) -> SnowflakeSink:
    config = parse_properties("snowflake", props)
    sink = sink_class("snowflake")(config, SinkEnv(sink_id="sf-1", sink_name="sf-1", output_schema=schema))
    assert isinstance(sink, SnowflakeSink)
    return sink


async def deliver(sink: SnowflakeSink, batches: list[pa.RecordBatch], first_epoch: int = 1, first_row: int = 0) -> None:
    """Write and flush one batch per epoch as the runtime does: row positions continue across epochs."""
    for epoch, batch in enumerate(batches, start=first_epoch):
        await sink.write(batch, WriteContext("sf-1", epoch, first_row))
        await sink.flush(epoch)
        first_row += batch.num_rows


def table_rows(connection: Any, table: str = "CAR_STATS") -> list[tuple[object, ...]]:
    cursor = connection.cursor()
    cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM {DATABASE}.{SCHEMA_NAME}.{table}")
    rows = [tuple(_utc(v) for v in row) for row in cursor.fetchall()]
    return sorted(rows, key=lambda row: (row[1], row[0]))


def _utc(value: object) -> object:
    return value.astimezone(dt.timezone.utc) if isinstance(value, dt.datetime) else value


async def test_rows_land_in_a_table_created_with_snowflake_types(patched_snowflake: Any) -> None:
    batches = [car_batch(window) for window in range(4)]
    sink = make_sink(PROPS)
    await sink.open()
    await deliver(sink, batches)
    await sink.close()

    assert table_rows(patched_snowflake) == rows_of(*batches)  # times, floats, booleans, exact decimals, NULLs
    cursor = patched_snowflake.cursor()
    cursor.execute(
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        f"WHERE table_schema = '{SCHEMA_NAME}' AND table_name = 'CAR_STATS' ORDER BY ordinal_position"
    )
    columns = cursor.fetchall()
    assert [c[0] for c in columns] == [name.upper() for name in COLUMNS]  # unquoted SQL finds them
    types = {name: kind for name, kind, *_ in columns}
    assert (types["TIME"], types["CID"], types["SPEED_KMH"], types["LOCKED"]) == ("TIMESTAMP_TZ", "TEXT", "FLOAT", "BOOLEAN")
    assert [c[2:] for c in columns if c[0] == "FEE"] == [(10, 2)]


async def test_an_existing_table_is_appended_to(patched_snowflake: Any) -> None:
    patched_snowflake.cursor().execute(
        f"CREATE TABLE {DATABASE}.{SCHEMA_NAME}.CAR_STATS (time TIMESTAMP_TZ, cid VARCHAR, speed_kmh FLOAT, "
        "total_km FLOAT, gas_percent FLOAT, locked BOOLEAN, in_use BOOLEAN, fee NUMBER(12,2), note VARCHAR, "
        "loaded_at TIMESTAMP_NTZ)"
    )
    first = make_sink(PROPS)
    await first.open()
    await deliver(first, [car_batch(0)])
    await first.close()
    again = make_sink(PROPS)  # a restarted sink finds its table and appends
    await again.open()
    await deliver(again, [car_batch(1)], first_epoch=2, first_row=3)
    await again.close()
    assert table_rows(patched_snowflake) == rows_of(car_batch(0), car_batch(1))


async def test_an_existing_table_without_a_result_column_is_refused_by_name(patched_snowflake: Any) -> None:
    patched_snowflake.cursor().execute(
        f"CREATE TABLE {DATABASE}.{SCHEMA_NAME}.CAR_STATS (time TIMESTAMP_TZ, cid VARCHAR)"
    )
    sink = make_sink(PROPS)
    with pytest.raises(PermanentError) as failure:
        await sink.open()
    await sink.close()
    assert "no column for result column 'speed_kmh'" in failure.value.message


async def test_a_batch_snowflake_refuses_is_rolled_back_entirely(patched_snowflake: Any) -> None:
    # The table's cid column is numeric: "c0000" can't be cast, the batch fails as a whole.
    patched_snowflake.cursor().execute(
        f"CREATE TABLE {DATABASE}.{SCHEMA_NAME}.CAR_STATS (time TIMESTAMP_TZ, cid NUMBER, speed_kmh FLOAT, "
        "total_km FLOAT, gas_percent FLOAT, locked BOOLEAN, in_use BOOLEAN, fee NUMBER(12,2), note VARCHAR)"
    )
    schema = pa.schema([("cid", pa.string())])
    sink = make_sink(PROPS, schema=schema)
    await sink.open()
    batch = pa.RecordBatch.from_pydict({"cid": ["1", "2", "c0000"]}, schema=schema)
    with pytest.raises(PermanentError) as failure:
        await sink.write(batch, WriteContext("sf-1", 1))
    await sink.close()
    assert "snowflake insert" in failure.value.message
    cursor = patched_snowflake.cursor()
    cursor.execute(f"SELECT count(*) FROM {DATABASE}.{SCHEMA_NAME}.CAR_STATS")
    assert cursor.fetchall() == [(0,)]


async def test_awkward_values_arrive_intact(patched_snowflake: Any) -> None:
    schema = pa.schema([("text", pa.string()), ("tags", pa.list_(pa.string())), ("day", pa.date32()),
                        ("big", pa.int64()), ("exact", pa.decimal128(18, 4))])
    batch = pa.RecordBatch.from_pydict(
        {
            "text": ["it's \"quoted\"\\ and\nmultiline é 中", None],
            "tags": [["a", "b'c"], None],
            "day": [dt.date(2022, 1, 23), None],
            "big": [2**62, None],
            # fakesnow parses JSON numbers as doubles (Snowflake keeps up to 38 digits exact):
            # 15 significant digits survive both.
            "exact": [decimal.Decimal("12345678901.2345"), None],
        },
        schema=schema,
    )
    sink = make_sink({**PROPS, "table": "awkward"}, schema=schema)
    await sink.open()
    await deliver(sink, [batch])
    await sink.close()
    cursor = patched_snowflake.cursor()
    cursor.execute(f"SELECT text, tags, day, big, exact FROM {DATABASE}.{SCHEMA_NAME}.AWKWARD ORDER BY big NULLS LAST")
    first, second = cursor.fetchall()
    assert first[0] == "it's \"quoted\"\\ and\nmultiline é 中"
    assert first[1].replace(" ", "").replace("\n", "") == '["a","b\'c"]'  # VARIANT comes back as JSON text
    assert first[2:] == (dt.date(2022, 1, 23), 2**62, decimal.Decimal("12345678901.2345"))
    assert (second[0], second[2], second[3], second[4]) == (None, None, None, None)


async def test_key_pair_login_is_accepted(patched_snowflake: Any) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    props = {**PROPS, "private_key": pem}
    del props["password"]
    sink = make_sink(props)
    await sink.open()
    await deliver(sink, [car_batch(0)])
    await sink.close()
    assert table_rows(patched_snowflake) == rows_of(car_batch(0))
    assert pem not in repr(masked("snowflake", props))


async def test_a_replayed_batch_is_not_inserted_twice(patched_snowflake: Any) -> None:
    batches = [car_batch(window) for window in range(3)]
    first = make_sink(PROPS)
    await first.open()
    await deliver(first, batches[:2])
    await first.close()
    # The process died after epoch 2 was committed here but before the runtime checkpointed it:
    # the restarted pipeline replays from row position 3, this time cut as one batch of 6 rows
    # (epoch 2's rows again, then new ones): only positions 6..8 are inserted.
    restarted = make_sink(PROPS)
    await restarted.open()
    replay = pa.Table.from_batches(batches[1:]).combine_chunks().to_batches()[0]
    await deliver(restarted, [replay], first_epoch=2, first_row=3)
    # A retry of a batch whose first attempt committed (the acknowledgement was lost) is skipped too.
    await restarted.write(batches[2], WriteContext("sf-1", 3, 6))
    await restarted.close()
    assert table_rows(patched_snowflake) == rows_of(*batches)


@pytest.mark.parametrize(
    ("props", "prop", "words"),
    [
        ({"password": None}, "password", "a password or a private_key is required"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n"}, "private_key", "not an unencrypted PEM private key"),
        ({"table": ""}, "table", "at least 1 character"),
        ({"batch_duration": "soon"}, "batch_duration", "duration"),
        ({"protocol": "ftp"}, "protocol", "'https' or 'http'"),
        ({"warehous": "WH"}, "warehous", "unknown property"),
    ],
)
def test_bad_properties_are_refused_naming_the_property(props: dict[str, Any], prop: str, words: str) -> None:
    merged = {k: v for k, v in {**PROPS, **props}.items() if v is not None}
    with pytest.raises(ConfigError) as failure:
        parse_properties("snowflake", merged)
    assert failure.value.prop == prop and words in failure.value.message
    assert "not a key" not in failure.value.message and "Sn0w-Secret" not in failure.value.message


def test_defaults_and_batch_policy() -> None:
    config = parse_properties("snowflake", PROPS)
    policy = config.batch_policy()
    assert (policy.max_rows, policy.max_wait) == (1000, 1.0)
    policy = parse_properties("snowflake", {**PROPS, "batch_count": 50, "batch_duration": "200ms"}).batch_policy()
    assert (policy.max_rows, policy.max_wait) == (50, 0.2)


# ------------------------------------------------------------------ server mode: the wire protocol


def server_props(server: FakesnowServer) -> dict[str, Any]:
    return {**PROPS, "host": server.host, "port": server.port, "protocol": "http"}


async def test_over_the_wire_protocol_rows_arrive(fakesnow_server: FakesnowServer) -> None:
    admin = snowflake.connector.connect(account="test", user="admin", password="ignored", host=fakesnow_server.host,
                                        port=fakesnow_server.port, protocol="http")
    try:
        admin.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        admin.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA_NAME}")
        batches = [car_batch(window, cars=5) for window in range(3)]
        sink = make_sink({**server_props(fakesnow_server), "table": "wire_cars"})
        await sink.open()
        await deliver(sink, batches)
        await sink.close()
        assert table_rows(admin, "WIRE_CARS") == rows_of(*batches)
    finally:
        admin.close()


async def test_an_unreachable_server_is_retryable_and_says_so() -> None:
    sink = make_sink({**PROPS, "host": "127.0.0.1", "port": free_port(), "protocol": "http"})
    with pytest.raises(RetryableError) as failure:
        await sink.open()
    assert "snowflake connecting" in failure.value.message and "Sn0w-Secret" not in failure.value.message
