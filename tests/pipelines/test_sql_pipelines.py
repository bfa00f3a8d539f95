"""Pipelines written in SQL against a real sinkflow server and real destinations: the seed's flows
the Timeplus 2.x way (Kafka external stream, HTTP external stream with a Template row format,
ClickHouse external table, a materialized view without INTO read with table()), INSERT into
external streams, control through SQL and through the Sink API (one catalog)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from confluent_kafka import Producer
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
    # An INSERT names the table's columns; ClickHouse converts the values to its types.
    sql(api, f"INSERT INTO ch_{cars} (cid, speed_kmh, total_km) VALUES ('extra', 1.5, 2), ('more', 3, 4.25)")
    added = client.execute(f"SELECT cid, speed_kmh, total_km FROM {table} WHERE cid IN ('extra', 'more') ORDER BY cid")
    assert added == [("extra", 1.5, 2.0), ("more", 3.0, 4.25)]
    assert "declares no columns: name them" in refused(api, f"INSERT INTO ch_{cars} VALUES ('c', 1, 2)")["message"]


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


def test_pause_on_start_creates_a_paused_view_that_misses_nothing(api: httpx.Client) -> None:
    cars = cars_stream(api)
    view = f"later_{cars}"
    sql(api, f"CREATE MATERIALIZED VIEW {view} AS SELECT cid, speed_kmh FROM {cars} WHERE speed_kmh > 90 "
             "SETTINGS pause_on_start=true, memory_weight=10")
    assert {r["name"]: r for r in rows(api, "SHOW MATERIALIZED VIEWS")}[view]["status"] == "paused"
    batches = generate()[:20]
    ingest(api, cars, batches)
    time.sleep(1.0)  # a paused view stores nothing, however long it waits
    assert rows(api, f"SELECT count() AS n FROM table({view})") == [{"n": 0}]
    sql(api, f"SYSTEM RESUME MATERIALIZED VIEW {view}")
    want = sorted((r[0], r[1]) for b in batches for r in b if r[1] > 90)
    wait_for(lambda: rows(api, f"SELECT count() AS n FROM table({view})")[0]["n"] >= len(want))
    assert sorted((r["cid"], r["speed_kmh"]) for r in rows(api, f"SELECT * FROM table({view})")) == want
    message = refused(api, f"CREATE MATERIALIZED VIEW bad_{cars} AS SELECT cid FROM {cars} SETTINGS pause_on_start=maybe")
    assert message["message"].startswith("pause_on_start must be true or false, not 'maybe'")


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
    # RECOVER restarts the view from its last checkpoint: it goes on delivering, losing nothing.
    assert "recovered materialized view" in sql(api, f"SYSTEM RECOVER MATERIALIZED VIEW {view}")["message"]
    more = generate()[20:30]
    ingest(api, cars, more)
    want_all = set(want) | {(r[0], r[1]) for b in more for r in b if r[1] > 90}
    wait_for(lambda: {(b["cid"], b["speed_kmh"]) for b in endpoint.bodies()} >= want_all)
    assert {(b["cid"], b["speed_kmh"]) for b in endpoint.bodies()} == want_all
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
    assert refused(api, f"DROP EXTERNAL TABLE {cars}")["message"] == f"external stream '{cars}' not found"
    sql(api, f"DROP EXTERNAL STREAM {hook}")
    assert {hook, cars} & {r["name"] for r in rows(api, "SHOW STREAMS")} == {cars}


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


def test_a_message_key_column_keys_what_is_written_and_reads_the_key(
        api: httpx.Client, tansu_broker: TansuBroker) -> None:
    topic = f"keyed-{next(_names)}"
    name = f"keyed_{next(_names)}"
    sql(api, f"CREATE EXTERNAL STREAM {name} (id int32, name string, _tp_message_key string) SETTINGS type='kafka', "
             f"brokers='{tansu_broker.bootstrap}', topic='{topic}', data_format='JSONEachRow'")
    sql(api, f"INSERT INTO {name} (id, name, _tp_message_key) VALUES (1, 'John', 'some-key'), (2, 'Jane', 'other')")
    got = consume(tansu_broker.bootstrap, topic, 2)
    # As in Timeplus: the column is the message key, and no part of the message's value.
    assert sorted((r.key, json.loads(r.value)) for r in got) == [
        (b"other", {"id": 2, "name": "Jane"}), (b"some-key", {"id": 1, "name": "John"})]
    read = f"SELECT id, name, _tp_message_key AS k FROM table({name}) ORDER BY id"
    wait_for(lambda: len(rows(api, read)) >= 2)
    assert rows(api, read) == [{"id": 1, "name": "John", "k": "some-key"}, {"id": 2, "name": "Jane", "k": "other"}]


def test_reading_an_external_stream_that_is_not_kafka_says_so(api: httpx.Client, httpserver: HTTPServer) -> None:
    name = f"hook_{next(_names)}"
    sql(api, f"CREATE EXTERNAL STREAM {name} (text string) SETTINGS type='http', url='{httpserver.url_for('/x')}'")
    error = refused(api, f"SELECT text\nFROM {name}")
    assert error["message"].startswith(f"external stream '{name}' (type 'http') cannot be read: only Kafka external "
                                       f"streams are sources here; write to it with INSERT INTO {name}")
    assert error["position"] == {"line": 2, "column": 6}
    error = refused(api, f"CREATE MATERIALIZED VIEW from_{name} AS SELECT text FROM table({name})")
    assert "cannot be read" in error["message"]
    assert f"from_{name}" not in {r["name"] for r in rows(api, "SHOW MATERIALIZED VIEWS")}


def test_timeplus_etl_tutorial_kafka_to_clickhouse(
        api: httpx.Client, tansu_broker: TansuBroker, clickhouse_server: ClickHouseServer) -> None:
    """The statements of Timeplus's "ETL from Kafka to ClickHouse" tutorial, as written there."""
    n = next(_names)
    table, topic = f"events_{n}", f"owlshop-frontend-events-{n}"
    client = clickhouse_server.client()
    # DateTime where the tutorial has DateTime64(3): the test server (ClickHouse 18) predates it.
    client.execute(f"CREATE TABLE {table} (_tp_time DateTime, url String, method String, ip String) "
                   "ENGINE=MergeTree() PRIMARY KEY (_tp_time, url) ORDER BY (_tp_time, url)")
    sql(api, f"CREATE EXTERNAL STREAM frontend_events_{n}(raw string) SETTINGS type='kafka', "
             f"brokers='{tansu_broker.bootstrap}', topic='{topic}'")
    sql(api, f"CREATE EXTERNAL TABLE ch_local_{n} SETTINGS type='clickhouse', address='{clickhouse_server.address}', "
             f"user='{clickhouse_server.user}', password='{clickhouse_server.password}', table='{table}'")
    sql(api, f"""CREATE MATERIALIZED VIEW mv_{n} INTO ch_local_{n} AS
    SELECT now64() AS _tp_time,
           raw:requestedUrl AS url,
           raw:method AS method,
           lower(hex(md5(raw:ipAddress))) AS ip
    FROM frontend_events_{n}""")
    events = [{"requestedUrl": f"https://shop.example/p/{i}", "method": "GET" if i % 2 else "POST",
               "ipAddress": f"10.0.0.{i}"} for i in range(50)]
    producer = Producer({"bootstrap.servers": tansu_broker.bootstrap})
    for event in events:
        producer.produce(topic, json.dumps(event).encode())
    assert producer.flush(30) == 0

    def stored() -> list[tuple[Any, ...]]:
        return client.execute(f"SELECT url, method, ip FROM {table} ORDER BY url")  # type: ignore[no-any-return]

    wait_for(lambda: len(stored()) >= len(events))
    want = sorted((e["requestedUrl"], e["method"], hashlib.md5(e["ipAddress"].encode()).hexdigest()) for e in events)
    assert stored() == want


def owlshop_events(count: int) -> list[dict[str, Any]]:
    """Frontend events like the tutorial's owlshop topic: nested response and headers objects."""
    return [{"version": 0, "requestedUrl": f"http://www.example.com/p/{i}", "method": ["GET", "POST", "PUT"][i % 3],
             "correlationId": f"c{i}", "ipAddress": f"10.0.0.{i}", "requestDuration": i * 10,
             "response": {"size": 100 + i, "statusCode": 404 if i % 4 == 0 else 200},
             "headers": {"accept": "*/*", "referrer": f"https://ref{i % 2}.example.org/x"}} for i in range(count)]


def test_timeplus_kafka_tutorial_queries(api: httpx.Client, tansu_broker: TansuBroker) -> None:
    """The statements of Timeplus's "Query Kafka with SQL" tutorial, as written there."""
    n = next(_names)
    topic = f"owlshop-frontend-events-{n}"
    events = owlshop_events(40)
    producer = Producer({"bootstrap.servers": tansu_broker.bootstrap})
    for event in events:
        producer.produce(topic, json.dumps(event).encode())
    assert producer.flush(30) == 0
    raw, parsed = f"frontend_events_{n}", f"frontend_events_json_{n}"
    sql(api, f"CREATE EXTERNAL STREAM {raw}(raw string) SETTINGS type='kafka', brokers='{tansu_broker.bootstrap}', "
             f"topic='{topic}'")
    sql(api, f"""CREATE EXTERNAL STREAM {parsed}(
	version int, requestedUrl string, method string, correlationId string, ipAddress string,
	requestDuration int, response string, headers string)
SETTINGS type='kafka', brokers='{tansu_broker.bootstrap}', topic='{topic}', data_format='JSONEachRow'""")
    assert rows(api, f"select count() from table({raw})") == [{"count()": 40}]
    # Nested objects read into string columns as their JSON text, as Timeplus reads them.
    first = rows(api, f"select requestedUrl, requestDuration, response, headers from table({parsed}) "
                      "where correlationId = 'c4'")
    assert first == [{"requestedUrl": "http://www.example.com/p/4", "requestDuration": 40,
                      "response": '{"size":104,"statusCode":404}',
                      "headers": '{"accept":"*/*","referrer":"https://ref0.example.org/x"}'}]
    counts = rows(api, f"select raw:method, count() as cnt, bar(cnt, 0, 40,5) as bar from table({raw}) "
                       "group by raw:method order by cnt desc")
    assert counts[0] == {"raw:method": "GET", "cnt": 14, "bar": "█▊"}
    view = f"mv_broken_links_{n}"
    sql(api, f"""create materialized view {view} as
select raw:requestedUrl as url,raw:method as method, raw:ipAddress as ip,
       raw:response.statusCode as statusCode, domain(raw:headers.referrer) as referrer
from {raw} where raw:response.statusCode<>'200' settings seek_to='earliest'""")
    broken = [e for e in events if e["response"]["statusCode"] != 200]
    wait_for(lambda: len(rows(api, f"select * from table({view})")) >= len(broken))
    got = sorted((r["url"], r["method"], r["statusCode"], r["referrer"]) for r in rows(api, f"select * from table({view})"))
    assert got == sorted((e["requestedUrl"], e["method"], "404", e["headers"]["referrer"][8:-2]) for e in broken)
    by_method = rows(api, f"select method, count() as cnt, bar(cnt,0,40,5) as bar from table({view}) "
                          "group by method order by cnt desc, method")
    assert by_method == [{"method": "GET", "cnt": 4, "bar": "▌"}, {"method": "POST", "cnt": 3, "bar": "▍"},
                         {"method": "PUT", "cnt": 3, "bar": "▍"}]


def test_algolia_example_column_default_and_rows_between_delimiter(api: httpx.Client, httpserver: HTTPServer) -> None:
    """Timeplus's HTTP external stream example for Algolia, as written there: objectID has a DEFAULT."""
    endpoint = RecordingEndpoint()
    url = endpoint.mount(httpserver, "/2/tasks/t1/push")
    name = f"http_algolia_{next(_names)}"
    sql(api, f"""CREATE EXTERNAL STREAM {name} (
    objectID string default uuid(),
    firstname string,
    lastname string,
    zip_code int32)
SETTINGS
type = 'http',
http_header_x_algolia_application_id='app',
http_header_x_algolia_api_key='secret-key',
url = '{url}',
data_format = 'Template',
format_template_resultset_format='{{"action":"addObject","records":[${{data}}]}}',
format_template_row_format='{{"objectID":${{objectID:JSON}},"firstname":${{firstname:JSON}},"lastname":${{lastname:JSON}},"zip_code":${{zip_code:JSON}}}}',
format_template_rows_between_delimiter=','""")
    sql(api, f"INSERT INTO {name}(firstname,lastname,zip_code) VALUES('firstnameA','lastnameA',123),"
             "('firstnameB','lastnameB',987)")
    bodies = sorted(endpoint.bodies(), key=lambda b: b["records"][0]["zip_code"])
    assert [b["action"] for b in bodies] == ["addObject", "addObject"]
    records = [r for b in bodies for r in b["records"]]
    assert [(r["firstname"], r["lastname"], r["zip_code"]) for r in records] == [
        ("firstnameA", "lastnameA", 123), ("firstnameB", "lastnameB", 987)]
    ids = [r["objectID"] for r in records]
    assert all(len(i) == 36 and i.count("-") == 4 for i in ids) and ids[0] != ids[1]  # uuid() per row
    statement = rows(api, f"SHOW CREATE {name}")[0]["statement"]
    assert "objectID string DEFAULT uuid()" in statement and "secret-key" not in statement
    # A view's rows go as its query gives them: it must compute the defaulted column itself.
    cars = cars_stream(api)
    message = refused(api, f"CREATE MATERIALIZED VIEW to_{name} INTO {name} AS "
                           f"SELECT cid AS firstname, cid AS lastname, 1 AS zip_code FROM {cars}")["message"]
    assert message.startswith(f"column 'objectID' of external stream '{name}' has a DEFAULT, which a view does not "
                              "compute: add `uuid() AS objectID` to the query")
