"""Stream DDL as a client uses it against a real server: column DEFAULT expressions filled at REST
and SQL ingest, keyed streams described, random streams generating rows that queries read."""

from __future__ import annotations

import time

import httpx

from tests.api.test_api import read_sse, rows, sql, unique


def test_rest_ingest_fills_defaults_from_expressions_over_given_columns(api: httpx.Client) -> None:
    name = unique("d")
    body = {"name": name, "columns": [
        {"name": "id", "type": "int64"},
        {"name": "label", "type": "string", "default": "concat('id-', to_string(id))"},
        {"name": "twice", "type": "int64", "default": "id * 2", "alias": True, "comment": "id doubled"},
        {"name": "raw", "type": "string", "default": "'{}'"},
    ]}
    created = api.post("/api/v1beta2/streams", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["columns"][1] == {"name": "label", "type": "string", "default": "concat('id-', to_string(id))"}
    ok = api.post(f"/api/v1beta2/streams/{name}/ingest", json={"columns": ["id"], "data": [[1], [2]]})
    assert ok.status_code == 200, ok.text
    api.post(f"/api/v1beta2/streams/{name}/ingest", json={"columns": ["id", "label"], "data": [[3, "three"]]})
    refused = api.post(f"/api/v1beta2/streams/{name}/ingest", json={"columns": ["id", "twice"], "data": [[4, 8]]})
    assert refused.status_code == 400 and "'twice'" in refused.json()["message"]
    assert rows(api, f"SELECT id, label, twice, raw FROM table({name}) ORDER BY id") == [
        {"id": 1, "label": "id-1", "twice": 2, "raw": "{}"},
        {"id": 2, "label": "id-2", "twice": 4, "raw": "{}"},
        {"id": 3, "label": "three", "twice": 6, "raw": "{}"},
    ]


def test_sql_insert_fills_defaults_and_event_time_from_an_expression(api: httpx.Client) -> None:
    name = unique("e")
    created = sql(api, f"CREATE STREAM {name} (raw string, device string DEFAULT json_extract_string(raw, 'd'), "
                       "_tp_time datetime64(3, 'UTC') DEFAULT to_time(json_extract_string(raw, 'at')))")
    assert created.status_code == 200, created.text
    inserted = sql(api, f"""INSERT INTO {name} (raw) VALUES ('{{"d": "a", "at": "2024-01-02T03:04:05.678Z"}}')""")
    assert inserted.status_code == 200, inserted.text
    assert rows(api, f"SELECT device, to_string(_tp_time) AS t FROM table({name})") == [
        {"device": "a", "t": "2024-01-02 03:04:05.678"}]


def test_a_default_reading_an_unknown_column_is_refused_with_its_position(api: httpx.Client) -> None:
    name = unique("bad")
    response = sql(api, f"CREATE STREAM {name} (a int32,\n  b int32 DEFAULT avgg(a))")
    assert response.status_code == 400
    body = response.json()
    assert "column 'b'" in body["message"] and "avgg" in body["message"]
    assert body["position"] == {"line": 2, "column": 19}
    rest = api.post("/api/v1beta2/streams", json={"name": name, "columns": [
        {"name": "a", "type": "int32"}, {"name": "b", "type": "int32", "default": "c + 1"}]})
    assert rest.status_code == 400 and "'c'" in rest.json()["message"]
    assert api.get(f"/api/v1beta2/streams/{name}").status_code == 404


def test_keyed_streams_are_described_by_sql_and_rest(api: httpx.Client) -> None:
    name = unique("kv")
    created = sql(api, f"CREATE STREAM {name} (i int, k string, k1 string) PRIMARY KEY (k, k1) "
                       "SETTINGS mode='versioned_kv', version_column='i', shards=3")
    assert created.status_code == 200, created.text
    info = api.get(f"/api/v1beta2/streams/{name}").json()
    assert (info["mode"], info["primary_key"], info["version_column"]) == ("versioned_kv", ["k", "k1"], "i")
    shown = rows(api, f"SHOW CREATE STREAM {name}")[0]["statement"]
    assert "PRIMARY KEY (k, k1)" in shown and "mode='versioned_kv'" in shown and "shards=3" in shown
    mutable = unique("m")
    assert sql(api, f"CREATE MUTABLE STREAM {mutable} (k string, v int) PRIMARY KEY k").status_code == 200
    listed = {r["name"]: r for r in rows(api, "SHOW STREAMS")}
    assert (listed[mutable]["mode"], listed[mutable]["primary_key"]) == ("mutable", ["k"])
    rest = unique("r")
    created = api.post("/api/v1beta2/streams", json={
        "name": rest, "columns": [{"name": "k", "type": "string"}, {"name": "v", "type": "int32"}],
        "mode": "changelog_kv", "primary_key": "k", "logstore_retention_ms": 3600000})
    assert created.status_code == 201, created.text
    assert (created.json()["mode"], created.json()["primary_key"], created.json()["retention_ms"]) == (
        "changelog_kv", ["k"], 3600000)
    missing_key = sql(api, f"CREATE STREAM {unique('x')} (k string) SETTINGS mode='changelog_kv'")
    assert missing_key.status_code == 400 and "PRIMARY KEY" in missing_key.json()["message"]


def test_a_random_stream_generates_rows_from_its_defaults(api: httpx.Client) -> None:
    name = unique("devices")
    created = sql(api, f"CREATE RANDOM STREAM {name}(device string default 'device'||to_string(rand()%4), "
                       "temperature float default rand()%1000/10) SETTINGS eps=50")
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + 10
    generated: list[dict[str, object]] = []
    while len(generated) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
        generated = rows(api, f"SELECT device, temperature FROM table({name})")
    assert len(generated) >= 20
    assert {r["device"] for r in generated} <= {"device0", "device1", "device2", "device3"}
    assert len({r["device"] for r in generated}) > 1  # evaluated per row, not once per batch
    assert all(0 <= r["temperature"] < 100 for r in generated)
    shown = rows(api, f"SHOW CREATE {name}")[0]["statement"]
    assert shown.startswith(f"CREATE RANDOM STREAM {name}") and "eps=50" in shown
    # A streaming query tails the generated rows.
    with api.stream("POST", "/api/v1beta2/queries", json={"sql": f"SELECT device FROM {name} LIMIT 5"},
                    headers={"Accept": "text/event-stream"}) as response:
        tailed = [row for event, rows in read_sse(response) if event == "row" for row in rows]
    assert len(tailed) == 5 and {row[0] for row in tailed} <= {"device0", "device1", "device2", "device3"}
    assert sql(api, f"DROP STREAM {name}").status_code == 200
