"""The console in a real browser (Debian Chromium via Playwright) against the real server with
demo data: what a user sees on the page, and what reaches the systems the page sends data to."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import APIResponse, Locator, Page, Route, expect
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.servers.sinkflow import SinkflowServer

CAR_QUERY = (
    "select window_end as time,cid,avg(speed_kmh) as speed_kmh,max(total_km) as total_km,"
    "avg(gas_percent) as gas_percent,min(locked) as locked,min(in_use) as in_use "
    "from tumble(car_live_data,2s) group by cid, window_end"
)
CAR_COLUMNS = ["time", "cid", "speed_kmh", "total_km", "gas_percent", "locked", "in_use"]
#: The car query's 2 s windows close only after a few seconds of demo data.
FIRST_ROWS_MS = 30_000
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"

# Counts the canvas pixels drawn in the legend's colours: the chart's lines or bars, not its
# axes, grid or labels (drawn in muted greys).
CHART_PIXELS_JS = """() => {
  const canvas = document.getElementById("chart-canvas");
  const colours = [...document.querySelectorAll("#chart-legend .swatch")]
    .map((s) => getComputedStyle(s).backgroundColor.match(/\\d+/g).map(Number));
  if (!colours.length || !canvas.width) return 0;
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] < 250) continue;
    if (colours.some(([r, g, b]) => Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 16)) n++;
  }
  return n;
}"""


def open_console(page: Page, server: SinkflowServer) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#stream-list [data-stream=car_live_data]")).to_be_visible()


def run(page: Page, sql: str | None = None) -> None:
    """Run `sql` (the editor's text when None) with the Run button."""
    if sql is not None:
        page.fill("#sql-input", sql)
    page.click("#run-button")


def wait_for_rows(page: Page, at_least: int, timeout: float = FIRST_ROWS_MS) -> None:
    page.wait_for_function("n => document.querySelectorAll('#results-table tbody tr').length >= n",
                           arg=at_least, timeout=timeout)


def table_header(page: Page) -> list[str]:
    return page.eval_on_selector_all("#results-table thead th", "ths => ths.map(th => th.firstChild.textContent)")


def table_column(page: Page, name: str) -> list[str]:
    index = table_header(page).index(name)
    return page.eval_on_selector_all("#results-table tbody tr",
                                     f"trs => trs.map(tr => tr.children[{index}].textContent)")


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def open_send_dialog(page: Page, sink_type: str) -> None:
    expect(page.locator("#send-button")).to_be_enabled()
    page.click("#send-button")
    page.click(f"#send-dialog [data-sink-type={sink_type}]")
    expect(page.locator("#send-dialog h2")).to_contain_text("Send results to")


def test_streams_list_shows_demo_streams_and_queries_one(page: Page, server: SinkflowServer) -> None:
    open_console(page, server)
    car = page.locator("#stream-list [data-stream=car_live_data]")
    columns = dict(zip(car.locator(".col-name").all_inner_texts(), car.locator(".col-type").all_inner_texts(), strict=True))
    assert {"cid": "string", "speed_kmh": "float32", "locked": "bool"}.items() <= columns.items()
    assert columns["time"].startswith("datetime64")
    expect(page.locator("#stream-list [data-stream=dim_car_info]")).to_be_visible()
    assert int(car.locator(".row-count").inner_text().replace(",", "")) > 0

    car.locator(".stream-name").click()
    expect(page.locator("#sql-input")).to_have_value("SELECT * FROM car_live_data")
    wait_for_rows(page, 5)
    assert {"cid", "speed_kmh", "time"} <= set(table_header(page))
    expect(page.locator("#query-state")).to_have_text("running")


def test_car_query_fills_table_and_chart_live(page: Page, server: SinkflowServer) -> None:
    open_console(page, server)
    expect(page.locator("#sql-input")).to_have_value(CAR_QUERY)
    assert page.locator("#editor .tok-keyword", has_text="select").count() == 1  # highlighted
    run(page)
    wait_for_rows(page, 1)
    assert table_header(page) == CAR_COLUMNS
    expect(page.locator("#query-state")).to_have_text("running")

    # The chart draws lines (one per car) in its legend's colours, and keeps drawing as windows close.
    page.wait_for_function(f"({CHART_PIXELS_JS})() > 150", timeout=FIRST_ROWS_MS)
    first_picture = page.eval_on_selector("#chart-canvas", "c => c.toDataURL()")
    rows_before = page.locator("#results-table tbody tr").count()
    wait_for_rows(page, rows_before + 1)
    page.wait_for_function("before => document.getElementById('chart-canvas').toDataURL() !== before",
                           arg=first_picture, timeout=FIRST_ROWS_MS)
    legend = page.locator("#chart-legend .legend-item").all_inner_texts()
    assert 1 <= len(legend) <= 8 and all(item.startswith("c") for item in legend)

    # Newest first: the top row's window is the latest.
    times = table_column(page, "time")
    assert times[0] == max(times) and times[0] > times[-1]
    total = int(page.inner_text("#rows-total").replace(",", ""))
    assert total >= rows_before
    assert float(page.inner_text("#row-rate")) > 0

    # A bar chart of the latest values per car.
    page.click(".seg[data-mode=bar]")
    page.wait_for_function(f"({CHART_PIXELS_JS})() > 500", timeout=5_000)

    page.click("#stop-button")
    expect(page.locator("#query-state")).to_have_text("stopped")
    stopped_at = page.locator("#results-table tbody tr").count()
    time.sleep(2.5)  # a window closes every 2 s: a query still running would add rows
    assert page.locator("#results-table tbody tr").count() == stopped_at


def test_result_table_keeps_a_bounded_number_of_rows(page: Page, server: SinkflowServer) -> None:
    with server.client() as api:
        wait_until(lambda: next(s["row_count"] for s in api.get("/api/v1beta2/streams").json()
                                if s["name"] == "car_live_data") > 600, 60, "600 demo rows")
    open_console(page, server)
    run(page, "select cid, speed_kmh from table(car_live_data)")
    expect(page.locator("#query-state")).to_have_text("finished", timeout=15_000)
    total = int(page.inner_text("#rows-total").replace(",", ""))
    assert total > 600
    assert page.locator("#results-table tbody tr").count() == 500


def test_sql_error_is_shown_at_its_position(page: Page, server: SinkflowServer) -> None:
    open_console(page, server)
    run(page, "select cid,\n  nope from car_live_data")
    error = page.locator("#query-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("nope")
    expect(error).to_contain_text("line 2, column 3")
    expect(page.locator("#editor .tok-error")).to_have_text("nope")
    expect(page.locator("#query-state")).to_have_text("failed")


def test_send_to_webhook_delivers_result_rows(page: Page, server: SinkflowServer, receiver: HTTPServer,
                                               output_dir: Path) -> None:
    bodies: list[bytes] = []

    def record(request: Request) -> Response:
        bodies.append(request.get_data())
        return Response("ok")

    receiver.expect_request("/hook", method="POST").respond_with_handler(record)
    open_console(page, server)
    run(page)
    wait_for_rows(page, 1)

    open_send_dialog(page, "webhook")
    dialog = page.locator("#send-dialog")
    expect(page.locator("#sink-name")).to_have_value("car_live_data_to_webhook")
    expect(dialog.locator("[data-property=url] .required")).to_be_visible()
    chips = dialog.locator("[data-property=body] .chip").all_inner_texts()
    assert chips == [f"{{{{ .{c} }}}}" for c in CAR_COLUMNS]
    dialog.locator("[data-property=url] input").fill(receiver.url_for("/hook"))
    page.click("#create-sink")
    expect(dialog).to_be_hidden()

    row = page.locator("#sinks-table tr[data-sink-name=car_live_data_to_webhook]")
    expect(row).to_be_visible()
    wait_until(lambda: bodies, 30, "a webhook request")
    document = json.loads(bodies[0])
    assert sorted(document) == sorted(CAR_COLUMNS)
    assert document["cid"].startswith("c") and isinstance(document["speed_kmh"], float)
    datetime.fromisoformat(document["time"])
    expect(row.locator(".delivered")).not_to_have_text("0", timeout=15_000)
    expect(row.locator(".state")).to_have_text("running")

    # The README's picture: a running query, its chart (a few windows drawn), and the sink delivering.
    page.wait_for_function("parseInt(document.getElementById('rows-total').textContent.replace(/,/g, '')) >= 500",
                           timeout=FIRST_ROWS_MS)
    page.wait_for_function(f"({CHART_PIXELS_JS})() > 150", timeout=FIRST_ROWS_MS)
    shot = output_dir / "console.png"
    page.screenshot(path=str(shot))
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, DOCS_SCREENSHOT)

    with server.client() as api:
        sink = next(s for s in api.get("/api/v1beta2/sinks").json() if s["name"] == "car_live_data_to_webhook")
        assert sink["query"] == CAR_QUERY and sink["type"] == "webhook"
        api.delete(f"/api/v1beta2/sinks/{sink['id']}").raise_for_status()


def test_a_poll_answered_late_does_not_take_back_a_sink_just_created(page: Page, server: SinkflowServer,
                                                                     receiver: HTTPServer) -> None:
    """The sinks panel polls, and refreshes after a creation: the poll's answer, from before the
    sink existed, may arrive last; the new sink stays listed."""
    receiver.expect_request("/late", method="POST").respond_with_data("ok")
    open_console(page, server)
    run(page, "select cid, speed_kmh from car_live_data")
    wait_for_rows(page, 1)
    held: list[tuple[Route, APIResponse]] = []

    def hold_polls(route: Route) -> None:
        # The answer as of now, handed to the page only when the test says so.
        held.append((route, route.fetch()))

    page.route("**/api/v1beta2/sinks", lambda route: hold_polls(route) if route.request.method == "GET" and not held
               else route.continue_())
    wait_until(lambda: held or page.wait_for_timeout(100), 10, "the sinks panel's next poll")
    open_send_dialog(page, "webhook")
    page.get_by_label("Webhook URL").fill(receiver.url_for("/late"))
    page.fill("#sink-name", "listed_at_once")
    page.click("#create-sink")
    row = page.locator("#sinks-table tr[data-sink-name=listed_at_once]")
    expect(row).to_be_visible()
    route, stale = held[0]
    route.fulfill(response=stale)
    # The panel polls again only after it has handled that answer: then the sink must still be listed.
    with page.expect_request(lambda r: r.url.endswith("/api/v1beta2/sinks") and r.method == "GET"):
        pass
    assert row.is_visible()
    with server.client() as api:
        sink = next(s for s in api.get("/api/v1beta2/sinks").json() if s["name"] == "listed_at_once")
        api.delete(f"/api/v1beta2/sinks/{sink['id']}").raise_for_status()


def test_slack_template_with_unknown_column_is_refused_next_to_the_field(
    page: Page, server: SinkflowServer, receiver: HTTPServer
) -> None:
    open_console(page, server)
    run(page)
    wait_for_rows(page, 1)
    open_send_dialog(page, "slack")
    dialog = page.locator("#send-dialog")
    expect(dialog.locator("[data-property=url] input")).to_have_attribute("type", "password")  # a secret
    dialog.locator("[data-property=url] input").fill(receiver.url_for("/slack"))
    template = dialog.locator("[data-property=template] textarea")
    dialog.locator("[data-property=template] .chip[data-column=cid]").click()  # inserts at the caret
    template.press("End")
    template.type(" drives at {{ .speed }} km/h")
    expect(template).to_have_value("{{ .cid }} drives at {{ .speed }} km/h")
    page.click("#create-sink")

    error = dialog.locator("[data-property=template] .field-error")
    expect(error).to_contain_text("speed")
    expect(dialog).to_be_visible()
    assert dialog.locator(".field-error:not(:empty)").count() == 1  # only the template is blamed
    with server.client() as api:
        assert all(s["type"] != "slack" for s in api.get("/api/v1beta2/sinks").json())
    assert receiver.log == []


def test_send_dialog_builds_the_form_from_the_property_model(page: Page, server: SinkflowServer,
                                                             receiver: HTTPServer) -> None:
    traces: list[str | None] = []

    def record(request: Request) -> Response:
        traces.append(request.headers.get("X-Trace"))
        return Response("ok")

    receiver.expect_request("/http", method="POST").respond_with_handler(record)
    open_console(page, server)
    run(page, "select cid, speed_kmh, time from car_live_data")
    wait_for_rows(page, 1)
    open_send_dialog(page, "http")
    dialog = page.locator("#send-dialog")

    def field(name: str) -> Locator:
        return dialog.locator(f'[data-property="{name}"]')

    # What the model says shows up: required, defaults, types, secrets, templates.
    expect(field("url").locator(".required")).to_be_visible()
    expect(field("timeout")).to_have_attribute("data-kind", "duration")
    expect(field("timeout").locator("input")).to_have_attribute("placeholder", "10s")
    expect(field("timeout").locator(".field-hint")).to_contain_text("default: 10s")
    expect(field("paralism").locator("input")).to_have_attribute("type", "number")
    expect(field("oauth2.client_secret").locator("input")).to_have_attribute("type", "password")
    expect(field("oauth2.scopes")).to_have_attribute("data-kind", "list")
    assert field("payload_field").locator(".chip").all_inner_texts() == ["{{ .cid }}", "{{ .speed_kmh }}", "{{ .time }}"]

    dialog.locator("details.more > summary").click()
    field("url").locator("input").fill(receiver.url_for("/http"))
    field("timeout").locator("input").fill("2s")
    headers = field("http_header")
    headers.locator("button.link").click()
    headers.locator(".kv-key").last.fill("Authorization")
    expect(headers.locator(".kv-value").last).to_have_attribute("type", "password")  # a secret header
    headers.locator(".kv-key").last.fill("X-Trace")
    expect(headers.locator(".kv-value").last).to_have_attribute("type", "text")
    headers.locator(".kv-value").last.fill("console-form")
    page.fill("#sink-name", "form_made_http")
    page.click("#create-sink")
    expect(dialog).to_be_hidden()

    wait_until(lambda: traces, 30, "an HTTP request")
    assert set(traces) == {"console-form"}
    with server.client() as api:
        sink = next(s for s in api.get("/api/v1beta2/sinks").json() if s["name"] == "form_made_http")
        props = sink["properties"]
        assert props["url"] == receiver.url_for("/http") and props["http_header"] == {"X-Trace": "console-form"}
        assert props["timeout"] in ("2s", 2, 2.0)
        assert "oauth2" not in props and "http_method" not in props  # left at their defaults: not sent
        api.delete(f"/api/v1beta2/sinks/{sink['id']}").raise_for_status()


def test_sinks_panel_dead_letters_pause_resume_delete(page: Page, server: SinkflowServer,
                                                      receiver: HTTPServer) -> None:
    receiver.expect_request("/reject", method="POST").respond_with_data("no such device", status=400)
    with server.client() as api:
        created = api.post("/api/v1beta2/sinks", json={
            "name": "rejected_cars", "description": "a webhook refusing every row", "sql": CAR_QUERY,
            "type": "webhook", "properties": {"url": receiver.url_for("/reject")},
        })
        assert created.status_code == 201, created.text
        sink_id = created.json()["id"]
    open_console(page, server)
    row = page.locator("#sinks-table tr[data-sink-name=rejected_cars]")
    expect(row).to_be_visible()
    # A server alone (the embedded mode) shows no cluster, and no node column.
    expect(page.locator("#cluster-view")).to_be_hidden()
    expect(page.locator("#sinks-table thead th")).to_have_text(
        ["Sink", "State", "Delivered", "Retries", "Dead-lettered", "Lag", "Last error", ""])
    expect(row.locator(".dead-lettered")).not_to_have_text("0", timeout=30_000)
    expect(row.locator(".last-error")).to_contain_text("400")

    row.locator("[data-action=dlq]").click()
    expect(page.locator("#sql-input")).to_have_value("SELECT * FROM table(rejected_cars_dlq)")
    wait_for_rows(page, 1)
    assert "error" in table_header(page)
    assert any("400" in text for text in table_column(page, "error"))

    def state() -> str:
        with server.client() as api:
            return str(api.get(f"/api/v1beta2/sinks/{sink_id}/status").json()["state"])

    row.locator("[data-action=pause]").click()
    expect(row.locator(".state")).to_have_text("paused")
    assert state() == "paused"
    row.locator("[data-action=resume]").click()
    expect(row.locator(".state")).not_to_have_text("paused")
    assert state() != "paused"

    # The dead-letter stream is listed apart, under its own heading after the user's streams.
    dlq = page.locator("#stream-list .stream-group ~ [data-stream=rejected_cars_dlq]")
    expect(dlq).to_be_visible(timeout=10_000)
    expect(page.locator("#stream-list .stream-group ~ [data-stream=car_live_data]")).to_have_count(0)

    row.locator("[data-action=ask-delete]").click()
    row.locator("input.drop-dlq").check()
    row.locator("[data-action=delete]").click()
    expect(row).to_have_count(0)
    with server.client() as api:
        assert all(s["id"] != sink_id for s in api.get("/api/v1beta2/sinks").json())
        assert api.get("/api/v1beta2/streams/rejected_cars_dlq").status_code == 404
    page.reload()
    expect(page.locator("#stream-list [data-stream=car_live_data]")).to_be_visible()
    expect(page.locator("#stream-list [data-stream=rejected_cars_dlq]")).to_have_count(0)


def test_page_asks_for_the_api_key_and_sends_it(page: Page, tmp_path: Path) -> None:
    guarded = SinkflowServer(tmp_path / "data", api_key="console-test-key")
    guarded.start()
    try:
        page.goto(guarded.url + "/")
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()
        page.fill("#key-input", "wrong-key")
        page.click("#key-form button[type=submit]")
        expect(dialog).to_be_visible()  # refused: asked again
        expect(page.locator("#key-error")).to_contain_text("refused")
        page.fill("#key-input", "console-test-key")
        page.click("#key-form button[type=submit]")
        expect(dialog).to_be_hidden()
        run(page, "create stream console_keyed (n int32)")
        expect(page.locator("#stream-list [data-stream=console_keyed]")).to_be_visible()
    finally:
        guarded.stop()


def test_sse_parser_handles_any_chunking(page: Page, server: SinkflowServer) -> None:
    """Bytes reach the page in arbitrary pieces: every split of a stream gives the same events."""
    open_console(page, server)
    events = page.evaluate("""async () => {
      const { SseParser } = await import("/sse.js");
      const text = 'event: query\\r\\ndata: {"id":"q"}\\r\\n\\r\\n: keep-alive\\n\\ndata: {"a":1}\\n\\n' +
                   'data: line1\\ndata: line2\\n\\nevent: end\\ndata: {}\\n\\n';
      const results = new Set();
      for (let i = 0; i <= text.length; i++) for (let j = i; j <= text.length; j += 7) {
        const p = new SseParser();
        const got = [text.slice(0, i), text.slice(i, j), text.slice(j)].flatMap((part) => p.feed(part));
        results.add(JSON.stringify(got));
      }
      return [...results].map((r) => JSON.parse(r));
    }""")
    assert events == [[
        {"event": "query", "data": '{"id":"q"}'},
        {"event": "message", "data": '{"a":1}'},
        {"event": "message", "data": "line1\nline2"},
        {"event": "end", "data": "{}"},
    ]]


def test_highlighter_keeps_the_text_and_maps_positions(page: Page, server: SinkflowServer) -> None:
    """The coloured layer must show exactly the editor's text, or the caret drifts from what is shown."""
    open_console(page, server)
    result = page.evaluate("""async () => {
      const { tokenize, offsetOf } = await import("/sql_highlight.js");
      const sql = "select a, 'it''s' as s, `odd name`, 2s -- note\\nfrom tumble(t, 10m) /* c */ where x >= 1.5e3 ~";
      const tokens = tokenize(sql);
      return {
        joined: tokens.map((t) => t.text).join("") === sql,
        kinds: Object.fromEntries(tokens.filter((t) => t.type !== "space").map((t) => [t.text, t.type])),
        positions: [offsetOf(sql, 1, 1), offsetOf(sql, 2, 1), offsetOf(sql, 2, 6), offsetOf(sql, 9, 1), offsetOf(sql, 1, 999)],
        newline: sql.indexOf("\\n"),
        length: sql.length,
      };
    }""")
    assert result["joined"]
    kinds = result["kinds"]
    assert kinds["select"] == kinds["from"] == kinds["where"] == "keyword"
    assert kinds["tumble"] == "function" and kinds["a"] == "word"
    assert kinds["'it''s'"] == "string" and kinds["`odd name`"] == "ident"
    assert kinds["2s"] == kinds["10m"] == kinds["1.5e3"] == "number"
    assert kinds["-- note"] == kinds["/* c */"] == "comment" and kinds["~"] == "other"
    newline = result["newline"]
    # 1-based (line, column); past the last line → the end; past a line's end → that line's end.
    assert result["positions"] == [0, newline + 1, newline + 6, result["length"], newline]
