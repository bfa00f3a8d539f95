"""The user's path through a sink in a real browser (Debian Chromium via Playwright) against the
real server with demo data: inspecting and editing a sink, the forms' labels and required
choices, numbers as Timeplus prints them, bounded queries, and the results area."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.console.test_console import CAR_QUERY, open_console, open_send_dialog, run, table_column, wait_for_rows, wait_until
from tests.servers.sinkflow import SinkflowServer

DOCS = Path(__file__).resolve().parents[2] / "docs"
TOKEN = "Bearer console-secret-token"
SINK_TYPES = ["slack", "email", "webhook", "http", "kafka", "pulsar", "clickhouse", "snowflake", "timeplus"]


def shortest_float32(text: str) -> bool:
    """True when ``text`` is a float32's shortest round-trip text (``126.95``), not the float64
    noise of its widened value (``126.94999694824219``)."""
    return float(text) == float(str(np.float32(text)))


def create_webhook(server: SinkflowServer, name: str, sql: str, properties: dict[str, Any], description: str = "") -> str:
    """Create a webhook sink through the API (as another client would); returns its id."""
    with server.client() as api:
        created = api.post("/api/v1beta2/sinks", json={"name": name, "description": description, "sql": sql,
                                                       "type": "webhook", "properties": properties})
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


class Recorder:
    """Keeps every request's body and headers; answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append((request.get_data(as_text=True), dict(request.headers)))
        return Response("ok")


def test_details_and_edit_keep_the_secret_and_the_change_takes_effect(
    page: Page, server: SinkflowServer, receiver: HTTPServer
) -> None:
    hook = Recorder()
    receiver.expect_request("/hook", method="POST").respond_with_handler(hook)
    sink_id = create_webhook(server, "speeds_hook", "select cid, speed_kmh from car_live_data", {
        "url": receiver.url_for("/hook"), "body": "v1 {{ .cid }} {{ .speed_kmh }}", "headers": {"Authorization": TOKEN}},
        description="speeds to a webhook")
    wait_until(lambda: hook.requests, 30, "the first delivery")

    open_console(page, server)
    page.locator("#sinks-table tr[data-sink-name=speeds_hook] button.sink-name").click()
    details = page.locator("#sink-dialog")
    expect(details).to_be_visible()
    expect(details.locator("#sink-state")).to_have_text("running")
    expect(details.locator("#sink-properties tr[data-property=headers] td")).to_have_text('{"Authorization":"********"}')
    expect(details.locator("#sink-properties tr[data-property=body] td")).to_have_text("v1 {{ .cid }} {{ .speed_kmh }}")
    expect(details.locator("#sink-counters")).to_contain_text("rows delivered")
    expect(details.locator("#sink-history tbody tr").first).to_contain_text("running")
    expect(details.locator("#sink-last-error")).to_have_text("No error.")
    assert TOKEN not in details.inner_text()
    expect(details.locator("#sink-counters .counter-value").first).not_to_have_text("0", timeout=30_000)  # refreshed live
    page.screenshot(path=str(DOCS / "sink-details.png"))

    details.locator("#edit-sink").click()
    dialog = page.locator("#send-dialog")
    expect(dialog.locator("h2")).to_have_text("Edit sink speeds_hook (Webhook)")
    expect(page.locator("#sink-name")).to_have_value("speeds_hook")
    body = page.get_by_label("Body", exact=False).first
    expect(body).to_have_value("v1 {{ .cid }} {{ .speed_kmh }}")
    assert dialog.locator(".dest").count() == 1  # an existing sink keeps its destination
    assert dialog.locator("[data-property=body] .chip").all_inner_texts() == ["{{ .cid }}", "{{ .speed_kmh }}"]
    body.fill("v2 {{ .cid }} {{ .speed_kmh }}")
    page.click("#create-sink")
    expect(dialog).to_be_hidden()

    def edited() -> list[tuple[str, dict[str, str]]]:
        return [r for r in hook.requests if r[0].startswith("v2 ")]

    wait_until(edited, 30, "a delivery with the edited body")
    for text, headers in edited():
        assert headers["Authorization"] == TOKEN  # the masked secret survived the edit
        speed = text.split()[2]
        assert shortest_float32(speed), text  # float32 as Timeplus prints it, in what the webhook receives
    with server.client() as api:
        stored = api.get(f"/api/v1beta2/sinks/{sink_id}").json()
        assert stored["properties"] == {"url": receiver.url_for("/hook"), "body": "v2 {{ .cid }} {{ .speed_kmh }}",
                                        "headers": {"Authorization": "********"}}
        api.delete(f"/api/v1beta2/sinks/{sink_id}").raise_for_status()


def test_the_live_table_shows_float32_as_the_api_and_sinks_send_it(page: Page, server: SinkflowServer) -> None:
    open_console(page, server)
    run(page, "select cid, speed_kmh from car_live_data")
    wait_for_rows(page, 20)
    speeds = table_column(page, "speed_kmh")
    assert all(shortest_float32(s) for s in speeds), speeds
    assert any("." in s for s in speeds), speeds


def test_forms_show_required_choices_labels_and_one_chosen_destination(page: Page, server: SinkflowServer) -> None:
    open_console(page, server)
    run(page)
    wait_for_rows(page, 1)
    open_send_dialog(page, "clickhouse")
    dialog = page.locator("#send-dialog")
    choices = dialog.locator("fieldset.one-of")
    expect(choices).to_have_count(2)
    for choice in choices.all():
        expect(choice).to_be_visible()  # up front, not among the optional settings
        assert dialog.locator("details.more").locator("fieldset.one-of").count() == 0
    expect(choices.first.locator("legend").first).to_have_text("Required: DSN or Hosts")
    expect(page.get_by_label("DSN")).to_have_attribute("type", "password")  # carries the password
    expect(page.get_by_label("CREATE TABLE statement")).to_be_visible()

    dialog.locator("[data-sink-type=kafka]").click()
    tls_off = page.get_by_label("Turn TLS off")
    expect(tls_off).to_be_visible()
    expect(tls_off).to_have_attribute("type", "checkbox")
    expect(page.get_by_label("Brokers")).to_be_visible()
    assert dialog.locator(".dest.active").count() == 1
    assert dialog.locator(".dest[aria-pressed=true]").get_attribute("data-sink-type") == "kafka"

    # Every type's dialog: labels bound to inputs, no internal notes; a screenshot for the docs
    # (a tall window, so the dialog shows most of its form).
    (DOCS / "dialogs").mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 1700})
    for sink_type in SINK_TYPES:
        dialog.locator(f"[data-sink-type={sink_type}]").click()
        text = dialog.inner_text()
        for internal in ("spec", "defaults from the", "an addition to"):
            assert internal not in text.lower(), (sink_type, internal)
        for label in dialog.locator("label.field-label").all():
            target = label.get_attribute("for")
            assert target and dialog.locator(f"#{target}").count() == 1, (sink_type, label.inner_text())
        assert not page.evaluate("document.querySelectorAll('[htmlfor]').length")
        page.mouse.move(0, 0)  # the dialog re-centres as its form changes: no stray hover in the picture
        dialog.screenshot(path=str(DOCS / "dialogs" / f"{sink_type}.png"))
    dialog.locator("button[aria-label=Close]").click()


def test_a_bounded_query_is_sent_only_after_confirming(page: Page, server: SinkflowServer, receiver: HTTPServer) -> None:
    hook = Recorder()
    receiver.expect_request("/once", method="POST").respond_with_handler(hook)
    open_console(page, server)
    run(page, "select cid, model from table(dim_car_info)")
    expect(page.locator("#query-state")).to_have_text("finished", timeout=15_000)
    rows = page.locator("#results-table tbody tr").count()
    assert rows > 0
    open_send_dialog(page, "webhook")
    dialog = page.locator("#send-dialog")
    page.get_by_label("Webhook URL").fill(receiver.url_for("/once"))
    page.fill("#sink-name", "bounded_once")
    page.click("#create-sink")
    warning = page.locator("#bounded-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("then stops")
    with server.client() as api:
        assert "bounded_once" not in [s["name"] for s in api.get("/api/v1beta2/sinks").json()]
    page.click("#confirm-bounded")
    expect(dialog).to_be_hidden()
    expect(page.locator("#notice")).to_contain_text("then stops")
    wait_until(lambda: len(hook.requests) == rows, 30, f"{rows} rows sent once")
    with server.client() as api:
        sink = next(s for s in api.get("/api/v1beta2/sinks").json() if s["name"] == "bounded_once")
        wait_until(lambda: api.get(f"/api/v1beta2/sinks/{sink['id']}").json()["stats"]["state"] == "finished",
                   30, "the sink to finish")
        api.delete(f"/api/v1beta2/sinks/{sink['id']}").raise_for_status()


def test_results_fit_at_1440_and_dead_letters_come_into_view_without_a_chart(
    page: Page, server: SinkflowServer, receiver: HTTPServer
) -> None:
    receiver.expect_request("/refuse", method="POST").respond_with_data("no", status=400)
    sink_id = create_webhook(server, "refused_speeds", "select cid, speed_kmh from car_live_data",
                             {"url": receiver.url_for("/refuse")})
    open_console(page, server)
    run(page, CAR_QUERY)
    wait_for_rows(page, 1)
    fits = page.eval_on_selector(".table-panel .table-wrap", "w => w.scrollWidth <= w.clientWidth")
    assert fits, "the car query's last column is cut off at 1440 px"

    row = page.locator("#sinks-table tr[data-sink-name=refused_speeds]")
    expect(row.locator(".dead-lettered")).not_to_have_text("0", timeout=30_000)
    page.evaluate("window.scrollTo(0, 0); document.querySelector('.main').scrollTo(0, 10000)")
    row.locator("[data-action=dlq]").click()
    wait_for_rows(page, 1)
    expect(page.locator("#results-table")).to_be_in_viewport()
    expect(page.locator("#chart-canvas")).to_have_attribute("data-lines", "0")
    assert page.locator("#chart-legend .legend-item").count() == 0
    with server.client() as api:
        api.delete(f"/api/v1beta2/sinks/{sink_id}").raise_for_status()


def test_an_error_the_sink_recovered_from_shows_as_past_with_its_time(
    page: Page, server: SinkflowServer, receiver: HTTPServer
) -> None:
    answers = iter([503, 503])

    def flaky(request: Request) -> Response:
        return Response("busy" if (status := next(answers, 200)) != 200 else "ok", status=status)

    receiver.expect_request("/flaky", method="POST").respond_with_handler(flaky)
    sink_id = create_webhook(server, "flaky_hook", "select cid from car_live_data", {"url": receiver.url_for("/flaky")})
    open_console(page, server)
    row = page.locator("#sinks-table tr[data-sink-name=flaky_hook]")
    expect(row.locator(".last-error.past")).to_contain_text("past · ", timeout=30_000)
    expect(row.locator(".retries")).not_to_have_text("0")
    row.locator("button.sink-name").click()
    last = page.locator("#sink-dialog #sink-last-error")
    expect(last).to_contain_text("Past error, 20")  # with its date
    expect(last).to_contain_text("the sink has delivered since")
    expect(last).to_contain_text("503")
    with server.client() as api:
        api.delete(f"/api/v1beta2/sinks/{sink_id}").raise_for_status()
