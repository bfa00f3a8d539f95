"""The REST API as a client sees it, against a real server process."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def create_stream(api: httpx.Client, name: str) -> None:
    body = {"name": name, "columns": [{"name": "id", "type": "int64"}, {"name": "speed", "type": "float64"},
                                      {"name": "tag", "type": "nullable(string)"}]}
    response = api.post("/api/v1beta2/streams", json=body)
    assert response.status_code == 201, response.text


def sql(api: httpx.Client, text: str) -> httpx.Response:
    return api.post("/api/v1beta2/queries", json={"sql": text})


def rows(api: httpx.Client, text: str) -> list[dict[str, object]]:
    """The rows of a bounded query ``text`` (which must succeed)."""
    response = sql(api, text)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


# -- streams and ingest ----------------------------------------------------------------------


def test_stream_lifecycle_over_rest(api: httpx.Client) -> None:
    name = unique("s")
    create_stream(api, name)
    info = api.get(f"/api/v1beta2/streams/{name}").json()
    assert [(c["name"], c["type"]) for c in info["columns"]] == [
        ("id", "int64"), ("speed", "float64"), ("tag", "nullable(string)"), ("_tp_time", "datetime64(3, 'UTC')")]
    assert name in [s["name"] for s in api.get("/api/v1beta2/streams").json()]
    assert api.post("/api/v1beta2/streams", json={"name": name, "columns": [{"name": "a", "type": "int8"}]}).status_code == 409
    assert api.delete(f"/api/v1beta2/streams/{name}").status_code == 204
    assert api.get(f"/api/v1beta2/streams/{name}").status_code == 404


def test_a_bad_column_type_is_named(api: httpx.Client) -> None:
    response = api.post("/api/v1beta2/streams", json={"name": unique("s"), "columns": [{"name": "a", "type": "int128x"}]})
    assert response.status_code == 400
    assert "'a'" in response.json()["message"] and "int128x" in response.json()["message"]


def test_ingest_stores_rows_and_a_bad_batch_is_rejected_whole(api: httpx.Client) -> None:
    name = unique("s")
    create_stream(api, name)
    ok = api.post(f"/api/v1beta2/streams/{name}/ingest",
                  json={"columns": ["id", "speed", "tag"], "data": [[1, 10.5, "a"], [2, 20.0, None]]})
    assert ok.status_code == 200 and ok.json()["count"] == 2
    bad = api.post(f"/api/v1beta2/streams/{name}/ingest",
                   json={"columns": ["id", "speed"], "data": [[3, 1.0], [4, 2.0], [5, "fast"]]})
    assert bad.status_code == 400
    message = bad.json()["message"]
    assert "row 3" in message and "speed" in message and "fast" in message
    rows = sql(api, f"select id from table({name}) order by id").json()["rows"]
    assert rows == [{"id": 1}, {"id": 2}]


# -- queries ---------------------------------------------------------------------------------


def test_sql_statements_answer_json(api: httpx.Client) -> None:
    name = unique("t")
    created = sql(api, f"CREATE STREAM {name} (cid string, v int32)")
    assert created.status_code == 200, created.text
    inserted = sql(api, f"INSERT INTO {name} (cid, v) VALUES ('a', 1), ('b', 2)")
    assert inserted.status_code == 200 and inserted.json()["count"] == 2
    described = sql(api, f"DESCRIBE {name}").json()
    assert [r["name"] for r in described["rows"]][:2] == ["cid", "v"]
    shown = sql(api, "SHOW STREAMS").json()
    assert name in [r["name"] for r in shown["rows"]]
    result = sql(api, f"select cid, v * 10 as w from table({name}) order by cid").json()
    assert result["columns"] == [{"name": "cid", "type": "string"}, {"name": "w", "type": "int64"}] or \
        [c["name"] for c in result["columns"]] == ["cid", "w"]
    assert [(r["cid"], r["w"]) for r in result["rows"]] == [("a", 10), ("b", 20)]


def test_sql_errors_name_the_position_and_unknown_names(api: httpx.Client) -> None:
    bad = sql(api, "select id\nfrm nowhere")
    assert bad.status_code == 400
    assert "position" in bad.json()
    unknown = sql(api, "select id from no_such_stream")
    assert unknown.status_code == 400 and "no_such_stream" in unknown.json()["message"]


def read_sse(response: httpx.Response, limit: int = 1000,
             on_start: Callable[[], object] | None = None) -> list[tuple[str, dict[str, object]]]:
    """The events of an SSE answer, up to ``limit``; ``on_start`` is called once the first event
    (the query, whose read position is then fixed) has arrived."""
    events, event = [], "row"
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[6:])))
            event = "row"
            if len(events) == 1 and on_start is not None:
                on_start()
            if len(events) >= limit:
                break
    return events


def test_a_streaming_query_sends_new_rows_as_server_sent_events_until_its_limit(
    api: httpx.Client, server: SinkflowServer
) -> None:
    name = unique("s")
    create_stream(api, name)
    api.post(f"/api/v1beta2/streams/{name}/ingest", json={"columns": ["id", "speed"], "data": [[0, 0.0]]})

    def feed() -> None:
        # Rows sent once the query has started: a streaming query reads what comes after its start.
        with server.client() as other:
            other.post(f"/api/v1beta2/streams/{name}/ingest",
                       json={"columns": ["id", "speed"], "data": [[i, i * 1.5] for i in range(1, 6)]}).raise_for_status()

    with api.stream("POST", "/api/v1beta2/queries", json={"sql": f"select id, speed from {name} where id > 1 limit 3"},
                    headers={"Accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_sse(response, on_start=feed)
    assert events[0][0] == "query"
    assert [c["name"] for c in events[0][1]["columns"]] == ["id", "speed"]  # type: ignore[index]
    rows = [row for kind, data in events if kind == "row" for row in data]  # type: ignore[attr-defined]
    assert rows == [[2, 3.0], [3, 4.5], [4, 6.0]]
    assert events[-1][0] == "query" and events[-1][1]["status"] == "finished"


# -- sinks -----------------------------------------------------------------------------------

SLACK_URL = "https://hooks.slack.com/services/T000/B000/verysecretpart"


def test_sink_crud_masks_secrets_and_returns_the_query(api: httpx.Client, server: SinkflowServer) -> None:
    name = unique("s")
    create_stream(api, name)
    sink_name = unique("alert")
    body = {"name": sink_name, "description": "d", "sql": f"select id, speed from {name}", "type": "slack",
            "properties": {"url": SLACK_URL, "template": "car {{ .id }} at {{ .speed }}"}}
    created = api.post("/api/v1beta2/sinks", json=body)
    assert created.status_code == 201, created.text
    sink = created.json()
    assert sink["query"] == f"select id, speed from {name}"
    assert sink["properties"]["url"] == "********"
    assert sink["properties"]["template"] == "car {{ .id }} at {{ .speed }}"
    listed = api.get("/api/v1beta2/sinks").json()
    assert sink_name in [s["name"] for s in listed]
    assert SLACK_URL not in json.dumps(listed)
    assert api.post(f"/api/v1beta2/sinks/{sink['id']}/pause").json()["stats"]["state"] == "paused"
    assert api.get(f"/api/v1beta2/sinks/{sink['id']}/status").json()["state"] == "paused"
    api.post(f"/api/v1beta2/sinks/{sink['id']}/resume")
    assert api.get(f"/api/v1beta2/sinks/{sink['id']}/status").json()["state"] != "paused"
    metrics = api.get("/metrics").text
    assert f'sinkflow_sink_rows_delivered_total{{sink_id="{sink["id"]}",sink="{sink_name}"}}' in metrics
    assert api.delete(f"/api/v1beta2/sinks/{sink['id']}").status_code == 204
    assert api.get(f"/api/v1beta2/sinks/{sink['id']}").status_code == 404
    assert SLACK_URL not in server.log_path.read_text()


@pytest.mark.parametrize(
    ("properties", "sql_text", "expected"),
    [
        ({"template": "{{ .id }}"}, "select id from {s}", {"property": "url", "message": "required"}),
        ({"url": SLACK_URL, "template": "{{ .id }} {{ .missing }}"}, "select id from {s}",
         {"property": "template", "message": "missing"}),
        ({"url": SLACK_URL, "template": "{{ range .id }}"}, "select id from {s}", {"property": "template", "message": "range"}),
        ({"url": SLACK_URL}, "select id from {s} whre id > 1", {"message": ""}),
    ],
)
def test_invalid_sinks_get_a_400_naming_the_problem_and_are_not_stored(
    api: httpx.Client, properties: dict[str, object], sql_text: str, expected: dict[str, str]
) -> None:
    name = unique("s")
    create_stream(api, name)
    sink_name = unique("bad")
    response = api.post("/api/v1beta2/sinks", json={"name": sink_name, "type": "slack",
                                                    "sql": sql_text.format(s=name), "properties": properties})
    assert response.status_code == 400, response.text
    body = response.json()
    if "property" in expected:
        assert body.get("property") == expected["property"]
    assert expected["message"] in body["message"]
    assert SLACK_URL not in response.text
    assert sink_name not in [s["name"] for s in api.get("/api/v1beta2/sinks").json()]


def test_sink_types_describe_every_destination_for_forms(api: httpx.Client) -> None:
    types = api.get("/api/v1beta2/sink-types").json()
    assert {"http", "webhook", "slack", "email", "timeplus", "kafka", "pulsar", "clickhouse", "snowflake"} <= set(types)
    slack = types["slack"]
    assert "url" in slack["required"] and "url" in slack["secrets"] and "template" in slack["templates"]
    assert types["http"]["properties"]["retry_interval"]["default"] == "10s"


# -- durability and access -------------------------------------------------------------------


def test_ingested_rows_survive_a_server_restart(data_dir: Path) -> None:
    with running(SinkflowServer(data_dir)) as srv:
        with srv.client() as api:
            create_stream(api, "kept")
            for start in range(0, 300, 100):
                api.post("/api/v1beta2/streams/kept/ingest",
                         json={"columns": ["id", "speed"], "data": [[i, float(i)] for i in range(start, start + 100)]})
        srv.stop()
        srv.start()
        with srv.client() as api:
            rows = sql(api, "select count() as n, sum(id) as total from table(kept)").json()["rows"]
            assert rows == [{"n": 300, "total": sum(range(300))}]


def test_an_api_key_guards_every_call_when_set(data_dir: Path) -> None:
    with running(SinkflowServer(data_dir, api_key="k-123456")) as srv:
        assert httpx.get(f"{srv.url}/api/v1beta2/info").json()["auth_required"] is True
        assert httpx.get(f"{srv.url}/api/v1beta2/streams").status_code == 401
        assert httpx.get(f"{srv.url}/api/v1beta2/streams", headers={"X-Api-Key": "wrong"}).status_code == 401
        assert httpx.get(f"{srv.url}/api/v1beta2/streams", headers={"X-Api-Key": "k-123456"}).status_code == 200


def test_the_server_refuses_a_non_loopback_address_without_an_api_key(data_dir: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "sinkflow.cli", "server", "--host", "0.0.0.0", "--port", "1",
                           "--data-dir", str(data_dir), "--no-demo"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "API key" in done.stderr


def test_a_streaming_query_stops_when_deleted_and_when_its_client_goes_away(
    api: httpx.Client, server: SinkflowServer
) -> None:
    name = unique("s")
    create_stream(api, name)
    with api.stream("POST", "/api/v1beta2/queries", json={"sql": f"select id from {name}"},
                    headers={"Accept": "text/event-stream"}) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        query_id = json.loads(first[6:])["id"]
        assert query_id in [q["id"] for q in api.get("/api/v1beta2/queries").json()]
        with server.client() as other:
            assert other.delete(f"/api/v1beta2/queries/{query_id}").status_code == 204
        # The stream ends by itself, with the query's final status.
        assert any(line.startswith("data: ") and json.loads(line[6:]).get("status") == "canceled" for line in lines)
    with api.stream("POST", "/api/v1beta2/queries", json={"sql": f"select id from {name}"},
                    headers={"Accept": "text/event-stream"}) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        query_id = json.loads(first[6:])["id"]
    # The client went away: the server stops the query and frees it.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if query_id not in [q["id"] for q in api.get("/api/v1beta2/queries").json() if q["status"] == "running"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the query kept running after its client went away")


def test_a_sink_can_be_redefined_and_a_bad_redefinition_changes_nothing(api: httpx.Client) -> None:
    name = unique("s")
    create_stream(api, name)
    sink_name = unique("copy")
    body = {"name": sink_name, "type": "timeplus", "sql": f"select id from {name}",
            "properties": {"stream_name": unique("out")}}
    sink = api.post("/api/v1beta2/sinks", json=body).json()
    changed = api.put(f"/api/v1beta2/sinks/{sink['id']}", json={**body, "sql": f"select id, speed from {name}",
                                                               "description": "now with speed"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["query"] == f"select id, speed from {name}"
    refused = api.put(f"/api/v1beta2/sinks/{sink['id']}", json={**body, "sql": f"select nope from {name}"})
    assert refused.status_code == 400 and "nope" in refused.json()["message"]
    kept = api.get(f"/api/v1beta2/sinks/{sink['id']}").json()
    assert (kept["query"], kept["description"]) == (f"select id, speed from {name}", "now with speed")
    api.delete(f"/api/v1beta2/sinks/{sink['id']}")


def test_deleting_a_sink_drops_its_dead_letters_only_when_asked(api: httpx.Client) -> None:
    name = unique("s")
    create_stream(api, name)
    kept, dropped = unique("kept"), unique("dropped")
    for sink_name in (kept, dropped):
        created = api.post("/api/v1beta2/sinks", json={"name": sink_name, "type": "timeplus",
                                                       "sql": f"select id from {name}",
                                                       "properties": {"stream_name": unique("out")}})
        assert created.status_code == 201, created.text
    internal = [s["name"] for s in api.get("/api/v1beta2/streams?internal=true").json()]
    assert {f"{kept}_dlq", f"{dropped}_dlq"} <= set(internal)
    listed = api.get("/api/v1beta2/streams").json()
    assert [s["internal"] for s in listed] == sorted(s["internal"] for s in listed)  # user streams first
    assert f"{kept}_dlq" not in [s["name"] for s in api.get("/api/v1beta2/streams?internal=false").json()]
    assert api.delete(f"/api/v1beta2/sinks/{kept}").status_code == 204
    assert api.delete(f"/api/v1beta2/sinks/{dropped}?drop_dead_letters=true").status_code == 204
    assert api.get(f"/api/v1beta2/streams/{kept}_dlq").json()["internal"] is True
    assert api.get(f"/api/v1beta2/streams/{dropped}_dlq").status_code == 404
