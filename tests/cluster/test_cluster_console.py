"""The console of a cluster node in a real browser (Debian Chromium via Playwright), against one
Tansu broker and three sinkflow nodes: what a user running three nodes checks on the page. Every
node is listed (id, address, alive) with the sinks it runs, each sink shows the node running it,
and after ``kill -9`` of a sink's node the open page shows that node down and the sink delivering
on its new node, as ``GET /api/v1beta2/cluster`` and ``/sinks/{id}/status`` say.
"""

from __future__ import annotations

import json
from pathlib import Path
from playwright.sync_api import Page, expect
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from sinkflow.cluster.settings import work_partition
from tests.servers.sinkflow_cluster import SESSION_TIMEOUT_MS, ClusterNodes, SinkflowNode, call, ingest, sql, wait_for

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "cluster-console.png"
#: The sinks panel polls every 2 s: the page shows an answer of the API within a few polls.
PAGE_CATCHES_UP_MS = 5 * 2000
#: A dead node's sinks move after the session timeout, the group's rejoin and the sink's start.
FAILOVER_S = SESSION_TIMEOUT_MS / 1000 * 4


def placement(node: SinkflowNode, names: dict[str, str]) -> dict[str, list[str]] | None:
    """The names of the sinks of ``names`` (id → name) each live node runs, as ``node``'s
    ``GET /cluster`` says, once every sink runs on exactly one live node and ``/sinks/{id}/status``
    names that node."""
    runs = {m["id"]: sorted(names[s] for s in m["sinks"] if s in names)
            for m in call(node, "GET", "/cluster")["nodes"] if m["alive"]}
    placed = [name for owned in runs.values() for name in owned]
    if sorted(placed) != sorted(names.values()):
        return None
    for sink_id, name in names.items():
        if name not in runs.get(call(node, "GET", f"/sinks/{sink_id}/status")["node"], []):
            return None
    return runs


def expect_page_shows(page: Page, node: SinkflowNode, names: dict[str, str], runs: dict[str, list[str]]) -> None:
    """The console lists every node of ``node``'s ``GET /cluster`` (address, alive, the sinks it
    runs: ``runs``) and shows each sink on the node running it."""
    members = call(node, "GET", "/cluster")["nodes"]
    expect(page.locator("#nodes-table tbody tr")).to_have_count(len(members), timeout=PAGE_CATCHES_UP_MS)
    for member in members:
        row = page.locator(f"#nodes-table tr[data-node-id={member['id']}]")
        expect(row.locator(".address")).to_have_text(member["address"], timeout=PAGE_CATCHES_UP_MS)
        expect(row.locator(".node-state")).to_have_text("alive" if member["alive"] else "down",
                                                        timeout=PAGE_CATCHES_UP_MS)
        if member["alive"]:
            expect(row.locator(".node-sink")).to_have_text(runs[member["id"]], timeout=PAGE_CATCHES_UP_MS)
        else:
            expect(row.locator(".node-sinks")).to_have_text("—", timeout=PAGE_CATCHES_UP_MS)
    for sink_id, name in names.items():
        runner = next(n for n, owned in runs.items() if name in owned)
        expect(page.locator(f"#sinks-table tr[data-sink-id='{sink_id}'] td.node")).to_have_attribute(
            "data-node", runner, timeout=PAGE_CATCHES_UP_MS)


def test_the_console_shows_the_nodes_and_follows_a_sink_to_its_new_node(
        nodes: list[SinkflowNode], cluster: ClusterNodes, page: Page, httpserver: HTTPServer) -> None:
    console, victim = nodes[0], nodes[2]
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
    before = wait_for(lambda: (p := placement(console, names)) and len(p) == 3 and all(p.values()) and p,
                      "every sink placed, every node running one")
    ingest(nodes[1], "beats", range(5))
    wait_for(lambda: all(sorted(received.get(n, [])) == list(range(5)) for n in names.values()),
             "the first rows delivered by every sink")

    page.goto(console.url + "/")
    expect(page.locator("#cluster-view .cluster-name")).to_have_text(cluster.name)
    expect(page.locator("#cluster-view .cluster-summary")).to_have_text("3 node(s), 3 alive")
    expect(page.locator(f"#nodes-table tr[data-node-id={console.node_id}] .here-badge")).to_have_text("this node")
    expect_page_shows(page, console, names, before)

    moving = {sink_id: name for sink_id, name in names.items() if name in before[victim.node_id]}
    victim.kill()
    after = wait_for(lambda: (p := placement(console, names)) and victim.node_id not in p and p,
                     "the dead node's sinks running on the others", timeout=FAILOVER_S)
    wait_for(lambda: not next(m for m in call(console, "GET", "/cluster")["nodes"] if m["id"] == victim.node_id)["alive"],
             "the dead node shown not alive", timeout=FAILOVER_S)
    # The page was not reloaded: its own refresh shows the node down and the sinks on their new nodes.
    expect_page_shows(page, console, names, after)
    victim_row = page.locator(f"#nodes-table tr[data-node-id={victim.node_id}]")
    expect(victim_row).to_have_attribute("data-alive", "false")
    for sink_id, name in moving.items():
        row = page.locator(f"#sinks-table tr[data-sink-id='{sink_id}']")
        expect(row.locator("td.node .moved")).to_have_text(f" (was {victim.node_id})")
        expect(row.locator(".state")).to_have_text("running")

    # The moved sinks deliver from their new nodes: the rows ingested now arrive, none lost.
    ingest(nodes[1], "beats", range(5, 10))
    wait_for(lambda: all(set(received.get(n, [])) == set(range(10)) for n in names.values()),
             "the rows after the failover delivered by every sink")
    for sink_id, name in moving.items():
        # Its count goes on from its last checkpoint on the old node (duplicates count again).
        cell = page.locator(f"#sinks-table tr[data-sink-id='{sink_id}'] .delivered")
        wait_for(lambda: (shown := int(cell.inner_text().replace(",", ""))) >= 10
                 and shown == call(console, "GET", f"/sinks/{sink_id}/status")["rows_delivered"],
                 f"the page and the API agreeing on the rows {name} delivered")
    expect(page.locator("#cluster-view .cluster-summary")).to_have_text("3 node(s), 2 alive")
    page.locator("#sinks-panel").screenshot(path=str(SCREENSHOT))
