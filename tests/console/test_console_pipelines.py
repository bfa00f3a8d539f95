"""The console shows external streams and views, marked as such; a view is in the sinks panel with
its status; "Send to…" can target an existing external stream (a real browser, a real server)."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.servers.sinkflow import SinkflowServer


def statement(server: SinkflowServer, sql: str) -> None:
    with server.client() as api:
        api.post("/api/v1beta2/queries", json={"sql": sql}).raise_for_status()


def test_streams_list_marks_external_streams_and_views(page: Page, server: SinkflowServer) -> None:
    statement(server, "CREATE EXTERNAL STREAM console_ext (cid string) SETTINGS type='http', "
                      "url='http://127.0.0.1:9/none'")
    statement(server, "CREATE MATERIALIZED VIEW console_mv AS SELECT cid, speed_kmh FROM car_live_data")
    statement(server, "CREATE VIEW console_v AS SELECT cid FROM car_live_data")
    page.goto(server.url + "/")
    expect(page.locator("#stream-list [data-stream=console_ext] .kind-badge")).to_have_text("external stream")
    expect(page.locator("#stream-list [data-stream=console_v] .kind-badge")).to_have_text("view")
    badge = page.locator("#stream-list [data-stream=console_mv] .kind-badge")
    expect(badge).to_have_text("view")
    expect(page.locator("#stream-list [data-stream=car_live_data] .kind-badge")).to_have_count(0)
    row = page.locator("#sinks-table tr[data-sink-name=console_mv]")
    expect(row.locator(".kind-badge")).to_have_text("view")
    expect(row.locator(".state")).to_have_text("running")
    badge.click()
    expect(row).to_have_class("flash")
    for name in ("console_mv", "console_v"):
        statement(server, f"DROP VIEW {name}")
    statement(server, "DROP STREAM console_ext")


def test_send_to_an_existing_external_stream(page: Page, server: SinkflowServer, receiver: HTTPServer) -> None:
    bodies: list[dict[str, object]] = []

    def record(request: Request) -> Response:
        bodies.append(json.loads(request.get_data()))
        return Response("ok")

    receiver.expect_request("/fast", method="POST").respond_with_handler(record)
    statement(server, f"CREATE EXTERNAL STREAM fast_hook (cid string, speed_kmh float32) SETTINGS type='http', "
                      f"url='{receiver.url_for('/fast')}'")
    page.goto(server.url + "/")
    page.fill("#sql-input", "SELECT cid, speed_kmh FROM car_live_data WHERE speed_kmh > 10")
    page.click("#run-button")
    page.wait_for_function("document.querySelectorAll('#results-table tbody tr').length >= 1", timeout=30_000)
    page.click("#send-button")
    page.click('#send-dialog [data-sink-type="external:fast_hook"]')
    expect(page.locator("#send-dialog h2")).to_have_text("Send results to fast_hook")
    expect(page.locator("#sink-name")).to_have_value("car_live_data_to_fast_hook")
    page.click("#create-sink")
    expect(page.locator("#send-dialog")).to_be_hidden()
    row = page.locator("#sinks-table tr[data-sink-name=car_live_data_to_fast_hook]")
    expect(row.locator(".kind-badge")).to_have_text("view")
    expect(row.locator(".delivered")).not_to_have_text("0", timeout=30_000)
    assert bodies and all(set(b) == {"cid", "speed_kmh"} and b["speed_kmh"] > 10 for b in bodies)  # type: ignore[operator]
    with server.client() as api:
        shown = api.post("/api/v1beta2/queries", json={"sql": "SHOW CREATE car_live_data_to_fast_hook"}).json()
    assert shown["rows"][0]["statement"].startswith("CREATE MATERIALIZED VIEW car_live_data_to_fast_hook INTO fast_hook AS")
    statement(server, "DROP VIEW car_live_data_to_fast_hook")
    statement(server, "DROP STREAM fast_hook")
