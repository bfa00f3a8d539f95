"""ClickHouse sink properties and the type mapping, without a server."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sinkflow.errors import ConfigError
from sinkflow.sinks.base import SinkEnv
from sinkflow.sinks.clickhouse import ClickHouseSink, ServerFeatures, create_table_sql
from sinkflow.sinks.registry import masked, parse_properties
from tests.clickhouse.car_results import SCHEMA


def config_error(props: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_properties("clickhouse", props)
    return caught.value


def test_dsn_and_hosts_both_missing() -> None:
    error = config_error({"table_name": "t", "engine": "Memory"})
    assert error.prop == "dsn" and "dsn or hosts is required" in error.message


def test_init_sql_and_engine_both_missing() -> None:
    error = config_error({"table_name": "t", "hosts": ["127.0.0.1"]})
    assert error.prop == "engine" and "init_sql or engine is required" in error.message


def test_table_name_is_required() -> None:
    assert config_error({"hosts": ["127.0.0.1"], "engine": "Memory"}).prop == "table_name"


def test_a_bad_host_entry_is_named() -> None:
    error = config_error({"table_name": "t", "hosts": ["127.0.0.1:9000", "db:port"], "engine": "Memory"})
    assert error.prop == "hosts" and "db:port" in error.message


def test_a_dsn_that_is_no_clickhouse_url_is_refused_without_echoing_it() -> None:
    error = config_error({"table_name": "t", "dsn": "mysql://u:pw-42@h/db", "engine": "Memory"})
    assert error.prop == "dsn" and "pw-42" not in error.message


def test_defaults_from_the_spec() -> None:
    config = parse_properties("clickhouse", {"table_name": "t", "hosts": "a:9000, b", "engine": "Memory"})
    policy = config.batch_policy()
    assert (policy.max_rows, policy.max_wait) == (128, 0.1)
    assert config.hosts == ["a:9000", "b"]  # type: ignore[attr-defined]
    custom = parse_properties(
        "clickhouse", {"table_name": "t", "hosts": "a", "engine": "Memory", "batch_count": 10000, "batch_duration": "1s"}
    )
    assert (custom.batch_policy().max_rows, custom.batch_policy().max_wait) == (10000, 1.0)


def test_password_and_dsn_are_secrets() -> None:
    shown = masked("clickhouse", {"table_name": "t", "dsn": "clickhouse://u:pw@h/db", "password": "pw", "engine": "Memory"})
    assert shown["dsn"] == "********" and shown["password"] == "********"


def test_type_mapping_on_a_current_server() -> None:
    schema = pa.schema(
        [
            pa.field("time", pa.timestamp("ms", tz="UTC"), nullable=False),
            pa.field("day", pa.date32()),
            pa.field("n", pa.int32(), nullable=False),
            pa.field("u", pa.uint64()),
            pa.field("ok", pa.bool_()),
            pa.field("fee", pa.decimal128(10, 2)),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("at", pa.timestamp("us", tz="Europe/Paris")),
            pa.field("sec", pa.timestamp("s")),
        ]
    )
    sql = create_table_sql("`t`", schema, "MergeTree()", "ORDER BY n", ServerFeatures.of((23, 8)))
    assert sql == (
        "CREATE TABLE IF NOT EXISTS `t` (`time` DateTime64(3, 'UTC'), `day` Nullable(Date), `n` Int32, "
        "`u` Nullable(UInt64), `ok` Nullable(Bool), `fee` Nullable(Decimal(10, 2)), `tags` Array(Nullable(String)), "
        "`at` Nullable(DateTime64(6, 'Europe/Paris')), `sec` Nullable(DateTime('UTC'))) ENGINE = MergeTree() ORDER BY n"
    )


def test_type_mapping_falls_back_on_old_servers() -> None:
    sql = create_table_sql("`t`", SCHEMA, "MergeTree()", "ORDER BY (`cid`, time)", ServerFeatures.of((18, 16)))
    assert "`time` DateTime('UTC')" in sql and "`cid` String" in sql and "`locked` Nullable(UInt8)" in sql


def test_a_result_type_without_clickhouse_counterpart_is_a_config_error() -> None:
    config = parse_properties("clickhouse", {"table_name": "t", "hosts": "a", "engine": "Memory"})
    schema = pa.schema([("pos", pa.struct([("x", pa.float64())]))])
    with pytest.raises(ConfigError) as caught:
        ClickHouseSink(config, SinkEnv("s", "s", schema))  # type: ignore[arg-type]
    assert caught.value.prop == "engine" and "'pos'" in caught.value.message and "init_sql" in caught.value.message
