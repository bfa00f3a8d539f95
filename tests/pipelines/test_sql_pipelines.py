"""Pipelines written in SQL against a real sinkflow server and real destinations: the seed's flows
the Timeplus 2.x way (Kafka external stream, HTTP external stream with a Template row format,
ClickHouse external table, a materialized view without INTO read with table()), INSERT into
external streams, control through SQL and through the Sink API (one catalog)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.crash.test_kill9 import CAR_QUERY, COLUMNS, car_key, expected, generate
from tests.kafka.kafka_support import consume
from tests.servers.clickhouse import ClickHouseServer
from tests.servers.http import RecordingEndpoint
from tests.servers.pulsar import PulsarServer
from tests.servers.pulsar import consume as consume_pulsar
from tests.servers.sinkflow import SinkflowServer
from tests.servers.tansu import TansuBroker

_names = itertools.count()
CAR_COLUMNS = ("cid string, speed_kmh float64, total_km float64, gas_percent float64, locked bool, in_use bool, "
               "time datetime64(3, 'UTC')")
RESULT_COLUMNS = ("time datetime64(3, 'UTC'), cid string, speed_kmh float64, total_km float64, gas_percent float64, "
                  "locked bool, in_use bool")


@pytest.fixture
def api(server: SinkflowServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def sql(api: httpx.Client, text: str) -> dict[str, Any]:
    """Run one statement; its JSON answer (failing the test on an error answer)."""
    response = api.post("/api/v1beta2/queries", json={"sql": text})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def refused(api: httpx.Client, text: str) -> dict[str, Any]:
    response = api.post("/api/v1beta2/queries", json={"sql": text})
    assert response.status_code >= 400, response.text
    return response.json()  # type: ignore[no-any-return]


def rows(api: httpx.Client, text: str) -> list[dict[str, Any]]:
    return sql(api, text)["rows"]  # type: ignore[no-any-return]


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def cars_stream(api: httpx.Client) -> str:
    name = f"cars_{next(_names)}"
    sql(api, f"CREATE STREAM {name} ({CAR_COLUMNS}) SETTINGS event_time_column='time'")
    return name


def ingest(api: httpx.Client, stream: str, batches: list[list[list[Any]]]) -> None:
    for batch in batches:
        api.post(f"/api/v1beta2/streams/{stream}/ingest", json={"columns": COLUMNS, "data": batch}).raise_for_status()


def car_query_into(api: httpx.Client, cars: str, external: str, settings: str) -> set[tuple[Any, ...]]:
    """The car query as a view INTO a new external stream ``external`` with ``settings``, fed the
    generated cars; the window rows it must deliver."""
    sql(api, f"CREATE EXTERNAL STREAM {external} ({RESULT_COLUMNS}) SETTINGS {settings}")
    sql(api, f"CREATE MATERIALIZED VIEW to_{external} INTO {external} AS {CAR_QUERY.replace('cars', cars)}")
    batches = generate()
    ingest(api, cars, batches)
    return expected(batches)[0]


def test_car_query_into_a_kafka_external_stream(api: httpx.Client, tansu_broker: TansuBroker) -> None:
    cars = cars_stream(api)
    topic = f"car-results-{next(_names)}"
    car_rows = car_query_into(api, cars, f"car_results_{cars}", f"type='kafka', brokers='{tansu_broker.bootstrap}', "
                              f"topic='{topic}', data_format='JSONEachRow', message_key='cid'")
    records = consume(tansu_broker.bootstrap, topic, len(car_rows))
    got = [json.loads(r.value) for r in records]
    assert {car_key(b) for b in got} == car_rows
    assert len(got) == len(car_rows)
    assert all(r.key == json.loads(r.value)["cid"].encode() for r in records)


def test_slack_message_through_an_http_external_stream_with_a_template(api: httpx.Client,
                                                                       httpserver: HTTPServer) -> None:
    slack = RecordingEndpoint()
    url = slack.mount(httpserver, "/services/T000/B000/XXX")
    cars = cars_stream(api)
    sql(api, f"""CREATE EXTERNAL STREAM slack_{cars} (text string) SETTINGS
        type = 'http',
        url = '{url}',
        data_format = 'Template',
        format_template_resultset_format = '{{"blocks":[{{"type":"section","text":{{"type":"mrkdwn","text":"${{data}}"}}}}]}}',
        format_template_row_format = '${{text:Raw}}',
        http_header_Authorization = 'Bearer xoxb-very-secret',
        http_header_X_Api_Key = 'k3y-very-secret'""")
    sql(api, f"CREATE MATERIALIZED VIEW alert_{cars} INTO slack_{cars} AS "
             f"SELECT concat('car ', cid, ' is speeding') AS text FROM {cars} WHERE speed_kmh > 98")
    batches = generate()
    ingest(api, cars, batches)
    speeding = sorted(row[0] for batch in batches for row in batch if row[1] > 98)
    assert speeding, "the generated data has speeding cars"
    wait_for(lambda: len(slack.received) >= len(speeding))
    texts = sorted(body["blocks"][0]["text"]["text"] for body in slack.bodies())
    assert texts == sorted(f"car {cid} is speeding" for cid in speeding)
    assert all(body["blocks"][0]["type"] == "section" for body in slack.bodies())
    assert {r.headers["Authorization"] for r in slack.received} == {"Bearer xoxb-very-secret"}
    assert {r.headers["X-Api-Key"] for r in slack.received} == {"k3y-very-secret"}
    shown = rows(api, f"SHOW CREATE slack_{cars}")[0]["statement"]
    assert "very-secret" not in shown and "http_header_Authorization='********'" in shown
    sink = next(s for s in api.get("/api/v1beta2/sinks").json() if s["name"] == f"alert_{cars}")
    assert "very-secret" not in json.dumps(sink)


def test_car_query_into_a_clickhouse_external_table(api: httpx.Client, clickhouse_server: ClickHouseServer) -> None:
    cars = cars_stream(api)
    table = f"car_results_{cars}"
    sql(api, f"CREATE EXTERNAL TABLE ch_{cars} SETTINGS type='clickhouse', address='{clickhouse_server.address}', "
             f"user='{clickhouse_server.user}', password='{clickhouse_server.password}', database='default', "
             f"table='{table}'")
    sql(api, f"CREATE MATERIALIZED VIEW to_ch_{cars} INTO ch_{cars} AS {CAR_QUERY.replace('cars', cars)}")
    batches = generate()
    ingest(api, cars, batches)
    car_rows, _ = expected(batches)
    client = clickhouse_server.client()

    def count() -> int:
        try:
            return int(client.execute(f"SELECT count() FROM {table}")[0][0])
        except Exception:  # the table appears with the view's first insert
            return 0

    wait_for(lambda: count() >= len(car_rows))
    got = client.execute(f"SELECT cid, speed_kmh, total_km FROM {table}")
    want = {(cid, speed, km) for _, cid, speed, km, *_ in car_rows}
    assert {(cid, round(s, 6), round(k, 6)) for cid, s, k in got} == want
    assert len(got) == len(car_rows)
    assert clickhouse_server.password not in rows(api, f"SHOW CREATE ch_{cars}")[0]["statement"]


def test_car_query_into_a_pulsar_external_stream_with_a_token(api: httpx.Client, pulsar_server: PulsarServer) -> None:
    cars = cars_stream(api)
    topic = f"persistent://public/default/car-results-{cars}"
    car_rows = car_query_into(api, cars, f"pulsar_{cars}", f"type='pulsar', service_url='{pulsar_server.url}', "
                              f"topic='{topic}', jwt='eyJ.secret.token', message_key='cid'")
    messages = consume_pulsar(pulsar_server, topic, len(car_rows))
    assert {car_key(json.loads(m.data())) for m in messages} == car_rows
    assert all(m.partition_key() == json.loads(m.data())["cid"] for m in messages)
    assert "eyJ.secret.token" not in rows(api, f"SHOW CREATE pulsar_{cars}")[0]["statement"]
    sink = next(s for s in api.get("/api/v1beta2/sinks").json() if s["name"] == f"to_pulsar_{cars}")
    assert sink["properties"]["auth_params"]["token"] == "********"


def test_materialized_view_without_into_is_read_with_table_and_by_other_views(api: httpx.Client) -> None:
    cars = cars_stream(api)
    sql(api, f"CREATE MATERIALIZED VIEW fast_{cars} AS SELECT cid, speed_kmh FROM {cars} WHERE speed_kmh > 50")
    sql(api, f"CREATE MATERIALIZED VIEW IF NOT EXISTS very_fast_{cars} AS "
             f"SELECT cid, speed_kmh FROM fast_{cars} WHERE speed_kmh > 90")
    assert sql(api, f"CREATE MATERIALIZED VIEW IF NOT EXISTS very_fast_{cars} AS SELECT cid FROM {cars}")["status"] == "ok"
    batches = generate()
    ingest(api, cars, batches)
    fast = sorted((r[0], r[1]) for b in batches for r in b if r[1] > 50)
    very_fast = sorted(x for x in fast if x[1] > 90)
    wait_for(lambda: rows(api, f"SELECT count() AS n FROM table(very_fast_{cars})")[0]["n"] >= len(very_fast))
    assert sorted((r["cid"], r["speed_kmh"]) for r in rows(api, f"SELECT * FROM table(fast_{cars})")) == fast
    assert sorted((r["cid"], r["speed_kmh"]) for r in rows(api, f"SELECT * FROM table(very_fast_{cars})")) == very_fast
    kinds = {r["name"]: r["type"] for r in rows(api, "SHOW STREAMS")}
    assert kinds[f"fast_{cars}"] == "materialized_view" and kinds[cars] == "stream"
    assert refused(api, f"DROP VIEW fast_{cars}")["message"].startswith(f"view 'fast_{cars}' is read by view(s)")
    sql(api, f"DROP VIEW very_fast_{cars}")
    sql(api, f"DROP VIEW fast_{cars}")
    names = {r["name"] for r in rows(api, "SHOW STREAMS")}
    assert f"fast_{cars}" not in names and f"very_fast_{cars}" not in names
    assert all(s["name"] != f"fast_{cars}" for s in api.get("/api/v1beta2/sinks").json())


def test_insert_into_external_streams_and_bounded_insert_select(api: httpx.Client, tansu_broker: TansuBroker) -> None:
    topic = f"inserted-{next(_names)}"
    name = f"k_{next(_names)}"
    sql(api, f"CREATE EXTERNAL STREAM {name} (cid string, speed float64) SETTINGS type='kafka', "
             f"brokers='{tansu_broker.bootstrap}', topic='{topic}'")
    answer = sql(api, f"INSERT INTO {name} (cid, speed) VALUES ('c1', 10.5), ('c2', 99)")
    assert answer["count"] == 2
    raw_topic = f"raw-{next(_names)}"
    sql(api, f"CREATE EXTERNAL STREAM raw_{name} (line string) SETTINGS type='kafka', "
             f"brokers='{tansu_broker.bootstrap}', topic='{raw_topic}'")  # one string column: RawBLOB
    sql(api, f"INSERT INTO raw_{name} VALUES ('plain text'), ('{{\"a\": 1}}')")
    assert [r.value for r in consume(tansu_broker.bootstrap, raw_topic, 2)] == [b"plain text", b'{"a": 1}']
    cars = cars_stream(api)
    ingest(api, cars, generate()[:2])
    copy = f"copy_{cars}"
    sql(api, f"CREATE STREAM {copy} (car string, speed float64)")
    assert sql(api, f"INSERT INTO {copy} (car, speed) SELECT cid, speed_kmh FROM table({cars}) "
                    "WHERE speed_kmh > 50")["count"] > 0
    assert sql(api, f"INSERT INTO {name} SELECT cid, speed_kmh AS speed FROM table({cars}) WHERE cid = 'c00'")["count"] == 2
    got = [json.loads(r.value) for r in consume(tansu_broker.bootstrap, topic, 4)]
    assert got[:2] == [{"cid": "c1", "speed": 10.5}, {"cid": "c2", "speed": 99.0}]
    assert [g["cid"] for g in got[2:]] == ["c00", "c00"]
    fast = sorted((r[0], r[1]) for b in generate()[:2] for r in b if r[1] > 50)
    assert sorted((r["car"], r["speed"]) for r in rows(api, f"SELECT car, speed FROM table({copy})")) == fast
    message = refused(api, f"INSERT INTO {copy} SELECT cid, speed_kmh FROM {cars}")["message"]
    assert "needs a bounded query" in message
    message = refused(api, f"INSERT INTO {name} SELECT cid, total_km FROM table({cars})")["message"]
    assert message.startswith(f"column 'total_km' of the query is not a column of external stream '{name}'")


def test_one_catalog_control_through_sql_and_the_sink_api(api: httpx.Client, httpserver: HTTPServer) -> None:
    endpoint = RecordingEndpoint()
    url = endpoint.mount(httpserver, "/hook")
    cars = cars_stream(api)
    hook = f"hook_{cars}"
    sql(api, f"CREATE EXTERNAL STREAM {hook} (cid string, speed_kmh float64) SETTINGS type='http', url='{url}'")
    view = f"mv_{cars}"
    sql(api, f"CREATE MATERIALIZED VIEW {view} INTO {hook} AS SELECT cid, speed_kmh FROM {cars} WHERE speed_kmh > 90")
    sink = next(s for s in api.get("/api/v1beta2/sinks").json() if s["name"] == view)
    assert sink["type"] == "http" and sink["properties"]["url"] == url
    api.post(f"/api/v1beta2/sinks/{sink['id']}/pause").raise_for_status()
    shown = {r["name"]: r for r in rows(api, "SHOW MATERIALIZED VIEWS")}
    assert shown[view]["status"] == "paused" and shown[view]["target"] == hook
    batches = generate()[:20]
    ingest(api, cars, batches)
    time.sleep(1.0)  # a paused view sends nothing, however long it waits
    assert endpoint.received == []
    sql(api, f"SYSTEM RESUME MATERIALIZED VIEW {view}")
    want = sorted((r[0], r[1]) for b in batches for r in b if r[1] > 90)
    wait_for(lambda: len(endpoint.received) >= len(want))
    assert sorted((b["cid"], b["speed_kmh"]) for b in endpoint.bodies()) == want
    # A sink made through REST is a materialized view in SQL too.
    api.post("/api/v1beta2/sinks", json={"name": f"rest_{cars}", "type": "webhook", "sql": f"SELECT cid FROM {cars}",
                                         "properties": {"url": url}}).raise_for_status()
    shown = {r["name"]: r for r in rows(api, "SHOW MATERIALIZED VIEWS")}
    assert shown[f"rest_{cars}"]["kind"] == "sink"
    sql(api, f"SYSTEM PAUSE MATERIALIZED VIEW rest_{cars}")
    assert api.get(f"/api/v1beta2/sinks/rest_{cars}").json()["stats"]["state"] == "paused"
    sql(api, f"DROP VIEW rest_{cars}")
    assert api.get(f"/api/v1beta2/sinks/rest_{cars}").status_code == 404
    assert "is written or read by view(s)" in refused(api, f"DROP STREAM {hook}")["message"]
    sql(api, f"DROP VIEW {view}")
    sql(api, f"DROP STREAM {hook}")
    assert all(r["name"] != hook for r in rows(api, "SHOW STREAMS"))


def test_errors_name_the_setting_or_the_place(api: httpx.Client) -> None:
    error = refused(api, "CREATE EXTERNAL STREAM e1 (a string) SETTINGS type='kafka', brokers='127.0.0.1:9092',\n"
                         "  topic='t', sasl_mechanism='GSSAPI', security_protocol='SASL_SSL'")
    assert error["message"].startswith("setting 'sasl_mechanism':") and error["position"] == {"line": 2, "column": 14}
    error = refused(api, "CREATE EXTERNAL STREAM e1 (a string) SETTINGS type='http', url='http://127.0.0.1:1/x', "
                         "data_format='Template', format_template_row_format='${a:CSV}'")
    assert "escaping rule 'CSV'" in error["message"]
    error = refused(api, "CREATE EXTERNAL STREAM e1 (a string) SETTINGS type='mqtt'")
    assert "unknown external stream type 'mqtt'" in error["message"]
    cars = cars_stream(api)
    error = refused(api, f"CREATE MATERIALIZED VIEW e2 AS\nSELECT nope FROM {cars}")
    assert error["position"] == {"line": 2, "column": 8}, error
    assert "neither a stream nor an external stream" in refused(
        api, f"CREATE MATERIALIZED VIEW e3 INTO nowhere AS SELECT cid FROM {cars}")["message"]
    sql(api, f"CREATE STREAM narrow_{cars} (cid string)")
    assert refused(api, f"CREATE MATERIALIZED VIEW e4 INTO narrow_{cars} AS SELECT cid, speed_kmh FROM {cars}")[
        "message"] == f"stream 'narrow_{cars}' has no column 'speed_kmh' (the query's output has it)"
    names = {r["name"] for r in rows(api, "SHOW STREAMS")}
    assert not names & {"e1", "e2", "e3", "e4"}


def test_describe_and_show_create(api: httpx.Client) -> None:
    cars = cars_stream(api)
    sql(api, f"CREATE EXTERNAL STREAM d_{cars} (raw string) SETTINGS type='kafka', brokers='127.0.0.1:9092', "
             "topic='t', security_protocol='SASL_SSL', username='u', password='pa55word'")
    assert rows(api, f"DESCRIBE d_{cars}") == [{"name": "raw", "type": "string"}]
    assert "an external stream named" in refused(api, f"CREATE STREAM d_{cars} (a int32)")["message"]
    statement = rows(api, f"SHOW CREATE d_{cars}")[0]["statement"]
    assert "pa55word" not in statement and "password='********'" in statement
    listed = {r["name"]: r for r in rows(api, "SHOW EXTERNAL STREAMS")}
    assert listed[f"d_{cars}"]["type"] == "kafka"
    sql(api, f"CREATE MATERIALIZED VIEW v_{cars} AS SELECT cid FROM {cars}")
    assert rows(api, f"SHOW CREATE v_{cars}")[0]["statement"] == f"CREATE MATERIALIZED VIEW v_{cars} AS SELECT cid FROM {cars}"
    sql(api, f"DROP VIEW v_{cars}")
    sql(api, f"DROP STREAM d_{cars}")


def test_plain_views_are_named_queries(api: httpx.Client) -> None:
    cars = cars_stream(api)
    view = f"fast_v_{cars}"
    sql(api, f"CREATE VIEW {view} AS SELECT cid, speed_kmh FROM {cars} WHERE speed_kmh > 50")
    assert rows(api, f"DESCRIBE {view}") == [{"name": "cid", "type": "string"}, {"name": "speed_kmh", "type": "float64"}]
    assert {r["name"]: r["query"] for r in rows(api, "SHOW VIEWS")}[view] == (
        f"SELECT cid, speed_kmh FROM {cars} WHERE speed_kmh > 50")
    assert {r["name"]: r["type"] for r in rows(api, "SHOW STREAMS")}[view] == "view"
    assert "already exists" in refused(api, f"CREATE VIEW {view} AS SELECT cid FROM {cars}")["message"]
    sql(api, f"DROP VIEW {view}")
    assert view not in {r["name"] for r in rows(api, "SHOW VIEWS")}


def test_a_query_reads_a_plain_view(api: httpx.Client) -> None:
    cars = cars_stream(api)
    batches = generate()[:4]
    ingest(api, cars, batches)
    sql(api, f"CREATE VIEW slow_v_{cars} AS SELECT cid, speed_kmh FROM table({cars}) WHERE speed_kmh < 30")
    got = rows(api, f"SELECT count() AS n FROM slow_v_{cars}")
    assert got == [{"n": sum(1 for b in batches for r in b if r[1] < 30)}]


def test_the_cli_runs_pipeline_statements(api: httpx.Client, server: SinkflowServer) -> None:
    cars = cars_stream(api)

    def cli(text: str) -> str:
        done = subprocess.run([sys.executable, "-m", "sinkflow.cli", "--server", server.url, "query", text],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert f"created materialized view 'cli_{cars}'" in cli(
        f"CREATE MATERIALIZED VIEW cli_{cars} AS SELECT cid FROM {cars} WHERE speed_kmh > 50")
    shown = cli("SHOW MATERIALIZED VIEWS")
    assert f"cli_{cars}" in shown and "running" in shown
    assert f"paused materialized view 'cli_{cars}'" in cli(f"SYSTEM PAUSE MATERIALIZED VIEW cli_{cars}")
    assert f"dropped view 'cli_{cars}'" in cli(f"DROP VIEW cli_{cars}")


def test_csv_kafka_external_stream_written_by_insert_and_view_and_read_back(
        api: httpx.Client, tansu_broker: TansuBroker) -> None:
    topic = f"csv-{next(_names)}"
    name = f"csv_{next(_names)}"
    sql(api, f"CREATE EXTERNAL STREAM {name} (cid string, n int64, speed float64, ok bool) SETTINGS type='kafka', "
             f"brokers='{tansu_broker.bootstrap}', topic='{topic}', data_format='CSV', one_message_per_row=true")
    assert sql(api, f"INSERT INTO {name} VALUES ('c1', 1, 10.5, true), ('say \"hi\", ok', -2, 99, false)")["count"] == 2
    local = f"local_{name}"
    sql(api, f"CREATE STREAM {local} (cid string, n int64, speed float64, ok bool)")
    sql(api, f"CREATE MATERIALIZED VIEW to_{name} INTO {name} AS SELECT cid, n, speed, ok FROM {local}")
    time.sleep(1.0)  # the view reads from now on
    api.post(f"/api/v1beta2/streams/{local}/ingest",
             json={"columns": ["cid", "n", "speed", "ok"], "data": [["a,b", 3, 0.25, True]]}).raise_for_status()
    got = [r.value for r in consume(tansu_broker.bootstrap, topic, 3)]
    assert got == [b'"c1",1,10.5,true', b'"say ""hi"", ok",-2,99,false', b'"a,b",3,0.25,true']
    expected_rows = [{"cid": "c1", "n": 1, "speed": 10.5, "ok": True},
                     {"cid": 'say "hi", ok', "n": -2, "speed": 99.0, "ok": False},
                     {"cid": "a,b", "n": 3, "speed": 0.25, "ok": True}]
    query = f"SELECT cid, n, speed, ok FROM table({name}) ORDER BY n"
    wait_for(lambda: len(rows(api, query)) >= 3)
    assert sorted(rows(api, query), key=lambda r: r["n"]) == sorted(expected_rows, key=lambda r: r["n"])


def test_seek_to_offsets_per_partition_are_refused_with_what_to_write(
        api: httpx.Client, tansu_broker: TansuBroker) -> None:
    name = f"offsets_{next(_names)}"
    sql(api, f"CREATE EXTERNAL STREAM {name} (raw string) SETTINGS type='kafka', "
             f"brokers='{tansu_broker.bootstrap}', topic='offsets-{next(_names)}'")
    error = refused(api, f"SELECT raw FROM {name}\nSETTINGS seek_to='5,3,11'")
    assert error["message"].startswith("seek_to '5,3,11': offsets per partition of a Kafka topic are not supported")
    assert "seek_to='earliest'" in error["message"]
    assert error["position"] == {"line": 2, "column": 18}
    error = refused(api, f"CREATE MATERIALIZED VIEW mv_{name} AS SELECT raw FROM {name} SETTINGS seek_to='0,10'")
    assert "seek_to '0,10'" in error["message"]
    assert f"mv_{name}" not in {r["name"] for r in rows(api, "SHOW STREAMS")}
