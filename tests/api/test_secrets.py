"""Secrets through the API: never shown, kept when sent back masked, merged by PATCH, and a
lost secrets store reported on the sinks that need it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.api.test_api import create_stream, unique
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer

TOKEN = "tok-4f9c2e7a1b"
PASSWORD = "pw-8d1e6c3a"
SINKS = "/api/v1beta2/sinks"


def http_sink(api: httpx.Client, headers: dict[str, str], url: str = "http://127.0.0.1:9/in") -> dict[str, object]:
    name = unique("s")
    create_stream(api, name)
    body = {"name": unique("h"), "type": "http", "sql": f"select id from {name}",
            "properties": {"url": url, "http_header": headers}}
    created = api.post(SINKS, json=body)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def stored_properties(server: SinkflowServer, sink_id: str) -> dict[str, object]:
    """The sink's real properties, as its pipeline gets them (read from the catalog files)."""
    from sinkflow.catalog import Catalog
    from sinkflow.sinks.registry import join_secrets

    catalog = Catalog(server.data_dir)
    try:
        record = next(r for r in catalog.sinks() if r.id == sink_id)
        return join_secrets(record.properties, record.secrets)
    finally:
        catalog.close()


def test_credential_like_headers_are_masked_whatever_their_case(api: httpx.Client) -> None:
    headers = {"AUTHORIZATION": f"Bearer {TOKEN}", "X-Api-Key": TOKEN + "k", "x-session-token": TOKEN + "s",
               "Cookie": f"sid={TOKEN}", "X-Client-Secret": TOKEN + "c", "X-Trace": "visible"}
    sink = http_sink(api, headers)
    shown = sink["properties"]["http_header"]  # type: ignore[index]
    assert shown == {name: "********" for name in headers if name != "X-Trace"} | {"X-Trace": "visible"}
    assert TOKEN not in json.dumps(api.get(SINKS).json())


def test_credentials_in_urls_are_masked_and_stored_apart(api: httpx.Client, server: SinkflowServer) -> None:
    url = f"http://user:{PASSWORD}@127.0.0.1:9/in?token={TOKEN}&api_key={TOKEN}2&page=1"
    sink = http_sink(api, {}, url)
    assert sink["properties"]["url"] == "http://********@127.0.0.1:9/in?token=********&api_key=********&page=1"  # type: ignore[index]
    listed = json.dumps(api.get(SINKS).json())
    assert PASSWORD not in listed and TOKEN not in listed
    assert PASSWORD.encode() not in (server.data_dir / "catalog.db").read_bytes()


def test_sending_back_what_get_returned_keeps_every_secret(api: httpx.Client, server: SinkflowServer) -> None:
    url = f"http://user:{PASSWORD}@127.0.0.1:9/in?token={TOKEN}"
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Api-Key": TOKEN}
    sink = http_sink(api, headers, url)
    shown = api.get(f"{SINKS}/{sink['id']}").json()
    shown["properties"]["retries"] = 7
    changed = api.put(f"{SINKS}/{sink['id']}", json={k: shown[k] for k in ("name", "type", "query", "properties")})
    assert changed.status_code == 200, changed.text
    real = stored_properties(server, str(sink["id"]))
    assert real["http_header"] == headers and real["url"] == url and real["retries"] == 7
    # A URL whose masked parts are kept while its host changes.
    moved = shown["properties"]["url"].replace("127.0.0.1:9", "127.0.0.1:10")
    assert api.put(f"{SINKS}/{sink['id']}", json={**shown, "properties": {**shown["properties"], "url": moved}}
                   ).status_code == 200
    assert stored_properties(server, str(sink["id"]))["url"] == url.replace("127.0.0.1:9", "127.0.0.1:10")


def test_a_mask_with_nothing_stored_behind_it_is_refused(api: httpx.Client) -> None:
    sink = http_sink(api, {})
    refused = api.put(f"{SINKS}/{sink['id']}", json={"name": sink["name"], "type": "http", "query": sink["query"],
                                                     "properties": {"url": "http://127.0.0.1:9/in",
                                                                    "http_header": {"X-Api-Key": "********"}}})
    assert refused.status_code == 400
    assert refused.json()["property"] == "http_header.X-Api-Key"


def test_patch_merges_properties_and_keeps_secrets(api: httpx.Client, server: SinkflowServer) -> None:
    sink = http_sink(api, {"Authorization": f"Bearer {TOKEN}", "X-Trace": "a"})
    patched = api.patch(f"{SINKS}/{sink['id']}", json={"description": "now retried",
                                                        "properties": {"retries": 2, "http_header": {"X-Trace": None,
                                                                                                     "X-More": "b"}}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "now retried"
    assert patched.json()["query"] == sink["query"]
    real = stored_properties(server, str(sink["id"]))
    assert real["http_header"] == {"Authorization": f"Bearer {TOKEN}", "X-More": "b"}
    assert real["retries"] == 2 and real["url"] == "http://127.0.0.1:9/in"
    bad = api.patch(f"{SINKS}/{sink['id']}", json={"properties": {"retries": "many"}})
    assert bad.status_code == 400 and bad.json()["property"] == "retries"
    assert api.patch(f"{SINKS}/{sink['id']}", json={"name": "other"}).status_code == 400
    assert stored_properties(server, str(sink["id"]))["retries"] == 2


def test_a_bad_header_is_named_without_echoing_the_header_map(api: httpx.Client) -> None:
    name = unique("s")
    create_stream(api, name)
    response = api.post(SINKS, json={"name": unique("h"), "type": "http", "sql": f"select id from {name}",
                                     "properties": {"url": "http://127.0.0.1:9/", "http_header": {
                                         "Authorization": f"Bearer {TOKEN}", "Bad Name": "x"}}})
    assert response.status_code == 400
    assert "'Bad Name' is not a valid HTTP header name" in response.json()["message"]
    assert TOKEN not in response.text


def test_a_lost_secrets_store_fails_the_sinks_that_need_it(tmp_path: Path) -> None:
    with running(SinkflowServer(tmp_path / "data")) as srv:
        with srv.client() as api:
            secret = http_sink(api, {"Authorization": f"Bearer {TOKEN}"})
        srv.stop()
        for path in srv.data_dir.glob("secrets.db*"):
            path.unlink()
        srv.start()
        with srv.client() as api:
            status = api.get(f"{SINKS}/{secret['id']}/status").json()
            assert status["state"] == "failed"
            assert "its secrets (http_header.Authorization) are missing" in status["reason"]
            # Setting the secret again repairs it.
            fixed = api.patch(f"{SINKS}/{secret['id']}",
                              json={"properties": {"http_header": {"Authorization": f"Bearer {TOKEN}"}}})
            assert fixed.status_code == 200, fixed.text
            assert fixed.json()["stats"]["state"] != "failed"
