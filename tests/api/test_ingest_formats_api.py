"""Timeplus's ingest formats over REST, as its docs and its Python SDK send them."""

from __future__ import annotations

import uuid

import httpx


def create(api: httpx.Client, columns: dict[str, str]) -> str:
    name = f"f_{uuid.uuid4().hex[:8]}"
    body = {"name": name, "columns": [{"name": n, "type": t} for n, t in columns.items()]}
    assert api.post("/api/v1beta2/streams", json=body).status_code == 201
    return name


def rows(api: httpx.Client, sql: str) -> list[dict[str, object]]:
    response = api.post("/api/v1beta2/queries", json={"sql": sql})
    assert response.status_code == 200, response.text
    return response.json()["rows"]  # type: ignore[no-any-return]


def test_json_lines_with_the_sdks_content_type_and_format_streaming(api: httpx.Client) -> None:
    name = create(api, {"key1": "string", "key2": "int32"})
    payload = '{"key1": "value11", "key2": 12}\n{"key1": "value21", "key2": 22}\n'
    response = api.post(f"/api/v1beta2/streams/{name}/ingest", params={"format": "streaming"}, content=payload,
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["count"] == 2
    assert rows(api, f"select key1, key2 from table({name}) order by key2") == [
        {"key1": "value11", "key2": 12}, {"key1": "value21", "key2": 22}]


def test_ndjson_content_type_alone_means_streaming(api: httpx.Client) -> None:
    name = create(api, {"key1": "string"})
    response = api.post(f"/api/v1beta2/streams/{name}/ingest", content='{"key1": "a"}{"key1": "b"}',
                        headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    assert rows(api, f"select key1 from table({name}) order by key1") == [{"key1": "a"}, {"key1": "b"}]


def test_lines_and_raw_into_the_raw_column(api: httpx.Client) -> None:
    name = create(api, {"raw": "string"})
    ingest = f"/api/v1beta2/streams/{name}/ingest"
    text = {"Content-Type": "text/plain"}
    assert api.post(ingest, params={"format": "lines"}, content="event1\nevent2\n", headers=text).json()["count"] == 2
    assert api.post(ingest, content='{"key1": "value11"}', headers=text).json()["count"] == 1  # text/plain: raw
    assert rows(api, f"select raw from table({name}) order by raw") == [
        {"raw": "event1"}, {"raw": "event2"}, {"raw": '{"key1": "value11"}'}]


def test_a_bad_streaming_row_is_named_and_nothing_is_stored(api: httpx.Client) -> None:
    name = create(api, {"id": "int32", "speed": "float64"})
    body = '{"id": 1, "speed": 1.5}\n{"id": 2, "speed": "fast"}\n'
    response = api.post(f"/api/v1beta2/streams/{name}/ingest?format=streaming", content=body)
    assert response.status_code == 400
    assert "row 2, column 'speed': cannot convert 'fast' to float64" in response.json()["message"]
    assert rows(api, f"select count() as n from table({name})") == [{"n": 0}]


def test_an_unknown_format_is_refused(api: httpx.Client) -> None:
    name = create(api, {"id": "int32"})
    response = api.post(f"/api/v1beta2/streams/{name}/ingest?format=csv", content="1")
    assert response.status_code == 400
    assert "unknown ingest format 'csv'" in response.json()["message"]
