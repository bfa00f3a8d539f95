"""The console of a cluster node in a real browser (Debian Chromium via Playwright), against one
Tansu broker and three sinkflow nodes: what a user running three nodes checks on the page. Every
node is listed (id, address, alive) with the sinks it runs, each sink shows the node running it,
and after ``kill -9`` of a sink's node the open page shows that node down and the sink delivering
on its new node, as ``GET /api/v1beta2/cluster`` and ``/sinks/{id}/status`` say.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from sinkflow.cluster.settings import work_partition
from tests.servers.sinkflow_cluster import SESSION_TIMEOUT_MS, ClusterNodes, SinkflowNode, call, ingest, sql, wait_for

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "cluster-console.png"
#: A dead node's sinks move after the session timeout, the group's rejoin and the sink's start.
FAILOVER_S = SESSION_TIMEOUT_MS / 1000 * 4

#: What the page shows, read at one instant: each node's address, state and the sinks it runs
#: (`—` for a down node), and the node each sink runs on (`—` while on none).
PAGE_VIEW_JS = """() => ({
  nodes: Object.fromEntries([...document.querySelectorAll("#nodes-table tbody tr")].map((tr) => {
    const sinks = tr.querySelector(".node-sinks");
    return [tr.dataset.nodeId, {
      address: tr.querySelector(".address").textContent,
      state: tr.querySelector(".node-state").textContent,
      sinks: sinks.textContent === "—" ? "—" : [...sinks.querySelectorAll(".node-sink")].map((b) => b.textContent),
    }];
  })),
  sinks: Object.fromEntries([...document.querySelectorAll("#sinks-table tbody tr")].map((tr) =>
    [tr.dataset.sinkId, tr.querySelector("td.node")?.firstChild.textContent ?? null])),
})"""


def api_view(node: SinkflowNode, names: dict[str, str]) -> dict[str, Any] | None:
    """What the page should show, from ``node``'s ``GET /cluster`` and ``/sinks/{id}/status``
    (``names``: id → name of the test's sinks), once every sink runs on exactly one live node."""
    members = call(node, "GET", "/cluster")["nodes"]
    view: dict[str, Any] = {"nodes": {}, "sinks": {}}
    for m in members:
        runs = sorted(names[s] for s in m["sinks"] if s in names) if m["alive"] else "—"
        view["nodes"][m["id"]] = {"address": m["address"], "state": "alive" if m["alive"] else "down", "sinks": runs}
    placed = sorted(name for n in view["nodes"].values() if n["sinks"] != "—" for name in n["sinks"])
    if placed != sorted(names.values()):
        return None
    for sink_id, name in names.items():
        runner = call(node, "GET", f"/sinks/{sink_id}/status")["node"]
        if runner is None or name not in view["nodes"][runner]["sinks"]:
            return None
        view["sinks"][sink_id] = runner
    return view


def page_agrees(page: Page, node: SinkflowNode, names: dict[str, str], what: str,
                settled: Callable[[dict[str, Any]], bool] = lambda view: True) -> dict[str, Any]:
    """The view the page and ``node``'s API agree on, once the API's is ``settled(view)``; read
    together until they agree (the page refreshes on its own poll, the API answers at once)."""
    def agreed() -> dict[str, Any] | None:
        view = api_view(node, names)
        return view if view is not None and settled(view) and page.evaluate(PAGE_VIEW_JS) == view else None

    return wait_for(agreed, what)


def test_the_console_shows_the_nodes_and_follows_a_sink_to_its_new_node(
        nodes: list[SinkflowNode], cluster: ClusterNodes, page: Page, httpserver: HTTPServer) -> None:
    console, feeder, victim = nodes
    received: dict[str, list[int]] = {}

    def record(request: Request) -> Response:
        received.setdefault(request.path.rsplit("/", 1)[1], []).append(json.loads(request.get_data())["n"])
        return Response("ok")

    sql(console, "CREATE STREAM beats (n int64)")
    # A sink in every unit of work, so that every node runs at least one once the group settles.
    names: dict[str, str] = {}
    units: set[int] = set()
    while len(units) < cluster.work_partitions:
        name = f"beat_{len(names)}"
        httpserver.expect_request(f"/hook/{name}").respond_with_handler(record)
        sink = call(console, "POST", "/sinks", json={"name": name, "type": "webhook", "sql": "select n from beats",
                                                     "properties": {"url": httpserver.url_for(f"/hook/{name}")}})
        names[sink["id"]] = name
        units.add(work_partition(sink["id"], cluster.work_partitions))
    ingest(feeder, "beats", range(5))
    wait_for(lambda: all(sorted(received.get(n, [])) == list(range(5)) for n in names.values()),
             "the first rows delivered by every sink")

    page.goto(console.url + "/")
    expect(page.locator("#cluster-view .cluster-name")).to_have_text(cluster.name)
    expect(page.locator(f"#nodes-table tr[data-node-id={console.node_id}] .here-badge")).to_have_text("this node")
    before = page_agrees(page, console, names, "the page showing three live nodes, each running sinks",
                         lambda view: len(view["nodes"]) == 3 and all(n["sinks"] for n in view["nodes"].values()))
    expect(page.locator("#cluster-view .cluster-summary")).to_have_text("3 node(s), 3 alive")
    assert {node_id: n["address"] for node_id, n in before["nodes"].items()} == {n.node_id: n.url for n in nodes}

    moving = [sink_id for sink_id, runner in before["sinks"].items() if runner == victim.node_id]
    victim.kill()
    wait_for(lambda: (view := api_view(console, names)) and view["nodes"][victim.node_id]["state"] == "down",
             "the API showing the dead node down and its sinks on the others", timeout=FAILOVER_S)
    # The page was not reloaded: its own refresh shows the node down and the sinks on their new nodes.
    after = page_agrees(page, console, names, "the page showing the node down and its sinks moved",
                        lambda view: view["nodes"][victim.node_id]["state"] == "down")
    assert {after["sinks"][sink_id] for sink_id in moving} <= {console.node_id, feeder.node_id}
    expect(page.locator("#cluster-view .cluster-summary")).to_have_text("3 node(s), 2 alive")
    for sink_id in moving:
        row = page.locator(f"#sinks-table tr[data-sink-id='{sink_id}']")
        expect(row.locator("td.node .moved")).to_have_text(f" (was {victim.node_id})")
        expect(row.locator(".state")).to_have_text("running")

    # The moved sinks deliver from their new nodes: the rows ingested now arrive, none lost.
    ingest(feeder, "beats", range(5, 10))
    wait_for(lambda: all(set(received.get(n, [])) == set(range(10)) for n in names.values()),
             "the rows after the failover delivered by every sink")
    for sink_id in moving:
        # Its count goes on from its last checkpoint on the old node (duplicates count again).
        cell = page.locator(f"#sinks-table tr[data-sink-id='{sink_id}'] .delivered")
        wait_for(lambda: (shown := int(cell.inner_text().replace(",", ""))) >= 10
                 and shown == call(console, "GET", f"/sinks/{sink_id}/status")["rows_delivered"],
                 f"the page and the API agreeing on the rows {names[sink_id]} delivered")
    page.locator("#sinks-panel").screenshot(path=str(SCREENSHOT))

    # A moved sink's details say where it runs now.
    page.locator(f"#sinks-table tr[data-sink-id='{moving[0]}'] button.sink-name").click()
    expect(page.locator("#sink-dialog #sink-node")).to_have_text(f"on node {after['sinks'][moving[0]]}")
