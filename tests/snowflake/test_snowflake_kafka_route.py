"""Route 1 of the spec, proven end to end: the kafka sink writes the query's results to a topic,
a loader does what the Kafka Connect Snowflake sink connector does (each message's JSON into
the VARIANT column RECORD_CONTENT of a table), and the spec's view, exactly as written,
returns the query's results column by column."""

from __future__ import annotations

import json
from typing import Any

import orjson

from tests.clickhouse.car_results import car_batch
from tests.kafka.kafka_support import consume, deliver, make_sink
from tests.servers.tansu import TansuBroker

#: The view of spec/SINKS.md ("Snowflake", route 1), verbatim.
SPEC_VIEW = """create view downsampled as select RECORD_CONTENT:time::timestamp_tz as time,
RECORD_CONTENT:cid as cid, RECORD_CONTENT:gas_percent as gas_percent,
RECORD_CONTENT:in_use as in_use,RECORD_CONTENT:locked as locked,
RECORD_CONTENT:speed_kmh as speed_kmh,RECORD_CONTENT:total_km as total_km from snowflake"""


def load_like_the_connector(connection: Any, topic: str, records: list[Any]) -> None:
    """What the Snowflake sink connector does with each message: RECORD_METADATA + RECORD_CONTENT."""
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE snowflake (RECORD_METADATA VARIANT, RECORD_CONTENT VARIANT)")
    rows: list[str] = []
    for record in records:
        metadata = {"topic": topic, "partition": record.partition, "offset": record.offset}
        rows += [orjson.dumps(metadata).decode(), record.value.decode()]
    values = ", ".join(["(%s, %s)"] * len(records))
    cursor.execute(
        "INSERT INTO snowflake (RECORD_METADATA, RECORD_CONTENT) "
        f"SELECT PARSE_JSON(column1), PARSE_JSON(column2) FROM VALUES {values}",
        rows,
    )


async def test_the_specs_view_reads_back_the_query_results_from_the_kafka_topic(
    tansu_broker: TansuBroker, patched_snowflake: Any
) -> None:
    topic = "downsampled-cars"
    batches = [car_batch(window, cars=4) for window in range(3)]
    sink = make_sink({"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True})
    await sink.open()
    await deliver(sink, batches)
    await sink.close()
    records = consume(tansu_broker.bootstrap, topic, 12)
    assert len(records) == 12

    patched_snowflake.cursor().execute("USE SCHEMA ANALYTICS.STREAMING")
    load_like_the_connector(patched_snowflake, topic, records)
    cursor = patched_snowflake.cursor()
    cursor.execute(SPEC_VIEW)
    cursor.execute("SELECT time, cid, gas_percent, in_use, locked, speed_kmh, total_km FROM downsampled")
    got = sorted(cursor.fetchall(), key=lambda row: (row[0], json.loads(row[1])))

    expected = sorted(
        (row for batch in batches for row in batch.to_pylist()), key=lambda row: (row["time"], row["cid"])
    )
    assert len(got) == len(expected)
    for (time, cid, gas, in_use, locked, speed, total), row in zip(got, expected):
        # time::timestamp_tz is a real timestamp with its zone; the other paths are VARIANTs,
        # which Snowflake shows as JSON text ('"c0001"', '40.5', 'true').
        assert time == row["time"] and time.utcoffset() is not None
        assert json.loads(cid) == row["cid"]
        assert json.loads(gas) == row["gas_percent"]
        assert json.loads(in_use) is row["in_use"] and json.loads(locked) is row["locked"]
        assert json.loads(speed) == row["speed_kmh"]
        assert json.loads(total) == row["total_km"]
